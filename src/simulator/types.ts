// The simulator's public types. Other parts of the project (pipeline tests, bench)
// code against exactly these names.
import type { Logger } from 'pino';

/** Faults injected into the four business endpoints (never the token or control endpoints). */
export interface SimulatorFaults {
  /** Business calls allowed per sliding 1000 ms window, the 4 business endpoints together; 0 = unlimited. */
  qps: number;
  /** Added before answering (and before applying) each business call. */
  latencyMs: number;
  /** Uniform extra 0..jitter ms on top of latencyMs. */
  latencyJitterMs: number;
  /** Probability of answering 2100004 "system busy" without applying. */
  busyRate: number;
  /** Probability of HTTP 503 with a non-JSON body, not applied. */
  http5xxRate: number;
  /** Probability of destroying the socket before applying (connection reset). */
  resetRate: number;
  /** Probability of never answering (not applied) for hangMs, then destroying the socket. */
  hangRate: number;
  hangMs: number;
  /** decr only: apply the deduction and record the trade, then destroy the socket without answering. */
  appliedButLostRate: number;
}

/** Platform behaviour that tests shorten or set: changeable while running (setSettings, POST /_sim/settings). */
export interface SimulatorSettings {
  /**
   * How long an applied out_trade_no is remembered, from its deduction; after it the
   * same call deducts again, as on the platform. Default 2592000 (one month).
   */
  idempotencyWindowSec: number;
  /**
   * How long the previous client_token stays valid after a new one is fetched; the
   * ones before it die at once (at most the latest two are valid). Default 300.
   */
  tokenOverlapSec: number;
  /** open_ids for which `is_test_env: true` succeeds (and deducts nothing). Default none. */
  testWhitelist: string[];
  /**
   * Where the order webhook (and the URL check) is POSTed. Absent (the default): no
   * webhooks are sent. A change applies to messages queued after it.
   */
  webhookUrl?: string;
}

/** A change of settings: `webhookUrl: null` turns webhooks off. */
export type SimulatorSettingsPatch = Partial<Omit<SimulatorSettings, 'webhookUrl'>> & {
  webhookUrl?: string | null;
};

export interface SimulatorOptions {
  /** Default 0 (a random free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 'sim-client-key'. */
  clientKey?: string;
  /** Default 'sim-client-secret'. */
  clientSecret?: string;
  /** expires_in of issued tokens, default 7200; tokens really expire. */
  tokenTtlSec?: number;
  faults?: Partial<SimulatorFaults>;
  /** Default 2592000 (one month); see SimulatorSettings. */
  idempotencyWindowSec?: number;
  /** Default 300; see SimulatorSettings. */
  tokenOverlapSec?: number;
  /** Default none; see SimulatorSettings. */
  testWhitelist?: string[];
  /** Default none (no webhooks); see SimulatorSettings. */
  webhookUrl?: string;
  /** Limit of each webhook delivery attempt, connect to the end of the answer. Default 5000. */
  webhookTimeoutMs?: number;
  /**
   * Wait before each retry of a webhook message; the length is the number of retries.
   * Default [100, 500, 2000] (3 retries, as the platform).
   */
  webhookRetryDelaysMs?: number[];
  /** Default: no request logging. */
  logger?: Logger | false;
}

export interface SimulatorBalance {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  remaining: number;
  purchased: number;
  deducted: number;
}

export interface SimulatorTrade {
  outTradeNo: string;
  openId: string;
  serviceId: string;
  serviceModeId: string;
  isTestEnv: boolean;
  count: number;
  /** Epoch ms when the deduction was applied (the latest, if it was applied again after the window). */
  at: number;
}

/** A successful call with `is_test_env: true`: answered, nothing deducted. */
export interface SimulatorTestCall {
  method: 'decr' | 'purchaseList';
  openId: string;
  serviceId: string;
  /** decr only. */
  serviceModeId?: string;
  count?: number;
  outTradeNo?: string;
  /** Epoch ms. */
  at: number;
}

/** A business request refused with 2100005 because it did not follow the contract. */
export interface SimulatorContractViolation {
  /** The route path, e.g. /market/service/user/purchase/list/. */
  path: string;
  /** What was wrong, naming the field. */
  problem: string;
  /** Epoch ms. */
  at: number;
}

export interface SimulatorCalls {
  /** Business calls received (including rejected and faulted ones). */
  total: number;
  /** Business calls received, by route path. */
  byPath: Record<string, number>;
  rateLimited: number;
  busy: number;
  http5xx: number;
  resets: number;
  hangs: number;
  appliedButLost: number;
  /** decr calls answered success without deducting because the out_trade_no was already applied. */
  replays: number;
  /** decr calls that deducted again: their out_trade_no was applied longer ago than the idempotency window. */
  deductedAgain: number;
  /** Business calls refused for a missing, wrong or expired (or superseded) access token. */
  tokenRefused: number;
  /** The most business calls received within any sliding 1000 ms window. */
  maxPerSecond: number;
}

/** An order webhook message (service_market_order) the simulator sent or is sending. */
export interface SimulatorWebhookDelivery {
  /** The Msg-Id header, the same on every attempt. */
  msgId: string;
  event: 'service_market_order';
  orderId: string;
  /** 1 paid, 2 accepted, 3 implementation confirmed, 4 user confirmed, 5 cancelled. */
  orderEvent: number;
  openId: string;
  serviceId: string;
  serviceModeId: string;
  /** remain_service_times of the snapshot. */
  remaining: number;
  /** Where it went. */
  url: string;
  /** HTTP attempts made so far (the first plus the retries). */
  attempts: number;
  /** delivered: an attempt got a 2xx; failed: every attempt failed (or the simulator reset or closed). */
  status: 'pending' | 'delivered' | 'failed';
  /** HTTP status of the latest attempt; absent when it got none (timeout, connection error). */
  httpStatus?: number;
  /** Why the latest attempt failed, e.g. "HTTP 500", "timeout after 5000 ms", "ECONNREFUSED". */
  error?: string;
  /** Epoch ms when it was queued. */
  at: number;
}

/** Order webhook deliveries (URL checks are not counted here). */
export interface SimulatorWebhooks {
  /** Messages queued, each once whatever its attempts. */
  sent: number;
  /** Messages answered 2xx. */
  delivered: number;
  /** Messages given up after their last attempt. */
  failed: number;
  /** HTTP attempts, retries included. */
  attempts: number;
  /** The latest 100 messages, oldest first. */
  last: SimulatorWebhookDelivery[];
}

/** An on-demand order webhook (POST /_sim/webhooks/send, sendWebhook). */
export interface WebhookSendInput {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  /** Default 1 (paid). */
  orderEvent?: number;
  /** Default: the user's current remaining times for the mode (0 without a purchase). */
  remaining?: number;
  /** Default: the order of the mode's latest purchase (a new id without one). */
  orderId?: string;
}

/** The outcome of the platform's URL check (POST /_sim/webhooks/verify, verifyWebhook). */
export interface WebhookVerifyResult {
  /** True when the target answered 2xx with the JSON `{"challenge": <the same number>}`. */
  ok: boolean;
  msgId: string;
  challenge: number;
  httpStatus?: number;
  /** The target's answer body, at most its first 1000 characters. */
  answer?: string;
  /** Why it is not ok. */
  error?: string;
}

/** The JSON returned by GET /_sim/state. */
export interface SimulatorState {
  balances: SimulatorBalance[];
  /** Accepted decr calls, one per out_trade_no. */
  trades: SimulatorTrade[];
  /** Successful test-mode calls (nothing deducted), oldest first; the latest 1000. */
  testCalls: SimulatorTestCall[];
  /** Requests refused as not following the contract, oldest first; the latest 1000. */
  contractViolations: SimulatorContractViolation[];
  /** Successful token fetches. */
  tokensIssued: number;
  calls: SimulatorCalls;
  webhooks: SimulatorWebhooks;
}

export interface BalanceInput {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  remaining: number;
}

export interface RunningSimulator {
  /** Base URL with a trailing slash, e.g. http://127.0.0.1:43123/ */
  url: string;
  port: number;
  state(): SimulatorState;
  setFaults(p: Partial<SimulatorFaults>): void;
  faults(): SimulatorFaults;
  settings(): SimulatorSettings;
  /** Validated partial change (throws InvalidSettingsError); `webhookUrl: null` turns webhooks off. */
  setSettings(p: SimulatorSettingsPatch): void;
  /** Sets remaining times directly (creates the purchase bucket). */
  setBalance(b: BalanceInput): void;
  /** Every token issued so far expires now. */
  expireTokens(): void;
  /**
   * Sends one order webhook now and resolves when it is delivered or given up (never
   * rejects for a failed delivery). Rejects with InvalidWebhookRequestError, or
   * NoWebhookUrlError when no URL is set.
   */
  sendWebhook(input: WebhookSendInput): Promise<SimulatorWebhookDelivery>;
  /** The platform's URL check, one attempt. Rejects with NoWebhookUrlError when no URL is set. */
  verifyWebhook(): Promise<WebhookVerifyResult>;
  /**
   * Clears balances, purchases, trades, counters, webhook records and faults (back to the
   * defaults), and cancels webhook deliveries under way; settings back to the start options.
   */
  reset(): void;
  close(): Promise<void>;
}
