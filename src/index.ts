// The package's public surface: the producer SDK (and its balance client), the
// event schema, the Douyin client and its errors, and verifyWebhook for app
// services receiving the meter's webhooks. Everything else is internal.

export * from './douyin/index.js'; // the client, its errors (DouyinError, kinds, codes) and schemas
export {
  EVENT_LIMITS,
  type UsageEvent,
  type UsageEventInput,
  usageEventSchema,
  validateEvent,
} from './events/schema.js';
export {
  DEFAULT_NOTIFICATION_TYPES,
  type MeterNotification,
  NOTIFICATION_TYPES,
  type NotificationType,
} from './notify/event-types.js';
export { SIGNATURE_HEADER, verifyWebhook, WebhookVerificationError } from './notify/signature.js';
export {
  type BalanceClient,
  type BalanceClientOptions,
  BalanceRequestError,
  createBalanceClient,
  type UserBalance,
} from './producer/balance-client.js';
export {
  InsufficientUsesError,
  InvalidEventsError,
  NotReplicatedError,
  ProducerClosedError,
} from './producer/errors.js';
export { createProducer, type Producer, type ProducerOptions } from './producer/producer.js';
