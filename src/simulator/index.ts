// The Douyin service-market simulator: a local server for testing exactly-once charging.

export { PATHS as SIMULATOR_PATHS } from './business-routes.js';
export { DEFAULT_FAULTS, InvalidFaultsError } from './faults.js';
export { SIMULATOR_DEFAULTS, startSimulator } from './server.js';
export { DEFAULT_SETTINGS, InvalidSettingsError } from './settings.js';
export type {
  BalanceInput,
  RunningSimulator,
  SimulatorBalance,
  SimulatorCalls,
  SimulatorContractViolation,
  SimulatorFaults,
  SimulatorOptions,
  SimulatorSettings,
  SimulatorSettingsPatch,
  SimulatorState,
  SimulatorTestCall,
  SimulatorTrade,
  SimulatorWebhookDelivery,
  SimulatorWebhooks,
  WebhookSendInput,
  WebhookVerifyResult,
} from './types.js';
export { signWebhook } from './webhook-wire.js';
export {
  InvalidWebhookRequestError,
  NoWebhookUrlError,
  ORDER_EVENTS,
  WEBHOOK_DEFAULTS,
} from './webhooks.js';
