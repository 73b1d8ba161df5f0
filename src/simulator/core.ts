// Everything the simulator knows and counts, shared by the HTTP routes and the
// programmatic RunningSimulator handle.
import { performance } from 'node:perf_hooks';
import { DEFAULT_FAULTS, parseFaultsPatch } from './faults.js';
import { applySettingsPatch, DEFAULT_SETTINGS, parseSettingsPatch } from './settings.js';
import { MarketStore } from './store.js';
import { TokenStore } from './tokens.js';
import type {
  BalanceInput,
  SimulatorCalls,
  SimulatorContractViolation,
  SimulatorFaults,
  SimulatorSettings,
  SimulatorSettingsPatch,
  SimulatorState,
  SimulatorTestCall,
  SimulatorWebhookDelivery,
  WebhookVerifyResult,
} from './types.js';
import { WebhookSender } from './webhook-sender.js';
import { newOrderId, type OrderMessage } from './webhook-wire.js';
import { NoWebhookUrlError, parseWebhookSend, WEBHOOK_DEFAULTS } from './webhooks.js';
import { SlidingWindow } from './window.js';

export interface CoreOptions {
  clientKey: string;
  clientSecret: string;
  tokenTtlSec: number;
  faults?: Partial<SimulatorFaults>;
  settings?: Partial<SimulatorSettings>;
  /** Default 5000. */
  webhookTimeoutMs?: number;
  /** Default [100, 500, 2000]. */
  webhookRetryDelaysMs?: readonly number[];
}

/** The bucket an order webhook is about. */
export interface OrderTarget {
  openId: string;
  serviceId: string;
  serviceModeId: string;
}

/** How many test calls and contract violations the state keeps (the latest ones). */
const KEPT = 1000;

function emptyCalls(): SimulatorCalls {
  return {
    total: 0,
    byPath: {},
    rateLimited: 0,
    busy: 0,
    http5xx: 0,
    resets: 0,
    hangs: 0,
    appliedButLost: 0,
    replays: 0,
    deductedAgain: 0,
    tokenRefused: 0,
    maxPerSecond: 0,
  };
}

function pushKept<T>(list: T[], item: T): void {
  list.push(item);
  if (list.length > KEPT) list.splice(0, list.length - KEPT);
}

export class SimulatorCore {
  readonly store: MarketStore;
  readonly tokens: TokenStore;
  readonly webhooks: WebhookSender;
  faults: SimulatorFaults;
  settings: SimulatorSettings;
  calls = emptyCalls();
  private testCalls: SimulatorTestCall[] = [];
  private violations: SimulatorContractViolation[] = [];
  /** The settings it started with; reset() returns to them. */
  private readonly startSettings: SimulatorSettings;
  private whitelist: ReadonlySet<string>;
  /** Every business call received, for maxPerSecond. */
  private received = new SlidingWindow(1000);
  /** Business calls let through the QPS limit. */
  private admitted = new SlidingWindow(1000);
  /** Pending latency and hang timers, cleared on close so nothing outlives the server. */
  private timers = new Set<NodeJS.Timeout>();

  constructor(readonly options: CoreOptions) {
    this.startSettings = applySettingsPatch(DEFAULT_SETTINGS, parseSettingsPatch(options.settings ?? {}));
    this.settings = this.startSettings;
    this.whitelist = new Set(this.settings.testWhitelist);
    this.store = new MarketStore(() => this.settings.idempotencyWindowSec * 1000);
    this.tokens = new TokenStore(options.tokenTtlSec, () => this.settings.tokenOverlapSec);
    this.faults = { ...DEFAULT_FAULTS, ...parseFaultsPatch(options.faults ?? {}) };
    this.webhooks = new WebhookSender({
      clientKey: options.clientKey,
      clientSecret: options.clientSecret,
      timeoutMs: options.webhookTimeoutMs ?? WEBHOOK_DEFAULTS.timeoutMs,
      retryDelaysMs: options.webhookRetryDelaysMs ?? WEBHOOK_DEFAULTS.retryDelaysMs,
    });
  }

  /** Counts a business call on receipt; false when it is over the QPS limit. */
  admit(path: string): boolean {
    const c = this.calls;
    c.total++;
    c.byPath[path] = (c.byPath[path] ?? 0) + 1;
    const now = performance.now();
    const seen = this.received.add(now);
    if (seen > c.maxPerSecond) c.maxPerSecond = seen;
    const qps = this.faults.qps;
    if (qps > 0 && this.admitted.count(now) >= qps) {
      c.rateLimited++;
      return false;
    }
    this.admitted.add(now);
    return true;
  }

  /** The configured latency plus jitter, in ms. */
  latency(): number {
    const { latencyMs, latencyJitterMs } = this.faults;
    return latencyMs + (latencyJitterMs > 0 ? Math.random() * latencyJitterMs : 0);
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  /** Runs fn after ms unless cancelled (the returned function) or the simulator closes. */
  later(ms: number, fn: () => void): () => void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return () => {
      clearTimeout(t);
      this.timers.delete(t);
    };
  }

  stopTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  setFaults(patch: Partial<SimulatorFaults>): void {
    this.faults = { ...this.faults, ...parseFaultsPatch(patch) };
  }

  setSettings(patch: SimulatorSettingsPatch): void {
    this.settings = applySettingsPatch(this.settings, parseSettingsPatch(patch));
    this.whitelist = new Set(this.settings.testWhitelist);
  }

  /** Whether `is_test_env: true` calls of this open_id succeed. */
  isTestUser(openId: string): boolean {
    return this.whitelist.has(openId);
  }

  recordTestCall(call: Omit<SimulatorTestCall, 'at'>): void {
    pushKept(this.testCalls, { ...call, at: Date.now() });
  }

  recordViolation(path: string, problem: string): void {
    pushKept(this.violations, { path, problem, at: Date.now() });
  }

  setBalance(b: BalanceInput): void {
    if (!b.openId || !b.serviceId || !b.serviceModeId) throw new Error('setBalance: ids must be non-empty');
    if (!Number.isSafeInteger(b.remaining) || b.remaining < 0) {
      throw new Error('setBalance: remaining must be a non-negative integer');
    }
    this.store.setBalance(b);
  }

  /**
   * Sends the order webhook of `orderEvent` for the bucket as it is now, when a URL is
   * set: fire and forget (the outcome is only recorded). `orderId` defaults to the
   * bucket's latest order.
   */
  notifyOrder(target: OrderTarget, orderEvent: number, orderId?: string): void {
    const url = this.settings.webhookUrl;
    if (!url || this.webhooks.isClosed) return;
    void this.webhooks.order(url, this.orderMessage(target, orderEvent, orderId));
  }

  /** The on-demand send: validated, waits for the delivery's outcome. */
  async sendWebhook(input: unknown): Promise<SimulatorWebhookDelivery> {
    const p = parseWebhookSend(input);
    const url = this.webhookUrl();
    return this.webhooks.order(url, this.orderMessage(p, p.orderEvent ?? 1, p.orderId, p.remaining));
  }

  async verifyWebhook(): Promise<WebhookVerifyResult> {
    return this.webhooks.verify(this.webhookUrl());
  }

  /** Issued tokens stay valid (use expireTokens); settings go back to the start options; everything else starts over. */
  reset(): void {
    this.store.clear();
    this.calls = emptyCalls();
    this.testCalls = [];
    this.violations = [];
    this.settings = this.startSettings;
    this.whitelist = new Set(this.settings.testWhitelist);
    this.received.clear();
    this.admitted.clear();
    this.tokens.resetCounter();
    this.faults = { ...DEFAULT_FAULTS };
    this.webhooks.clear();
  }

  state(): SimulatorState {
    return {
      balances: this.store.balances(),
      trades: this.store.tradeList(),
      testCalls: this.testCalls.map((c) => ({ ...c })),
      contractViolations: this.violations.map((v) => ({ ...v })),
      tokensIssued: this.tokens.issued,
      calls: { ...this.calls, byPath: { ...this.calls.byPath } },
      webhooks: this.webhooks.snapshot(),
    };
  }

  private webhookUrl(): string {
    const url = this.settings.webhookUrl;
    if (!url) throw new NoWebhookUrlError();
    return url;
  }

  /** The message for the bucket's current state (remaining 0 and a new order without a bucket). */
  private orderMessage(
    t: OrderTarget,
    orderEvent: number,
    orderId?: string,
    remaining?: number,
  ): OrderMessage {
    const b = this.store.snapshot(t.openId, t.serviceId, t.serviceModeId);
    const now = Date.now();
    return {
      openId: t.openId,
      orderId: orderId ?? b?.orderId ?? newOrderId(now),
      orderEvent,
      snapshot: {
        service_id: t.serviceId,
        service_mode_id: t.serviceModeId,
        specification_id: t.serviceModeId,
        remain_service_times: remaining ?? b?.remaining ?? 0,
        effective_time: b?.effectiveTime ?? now,
        expire_time: b?.expireTime ?? -1,
      },
    };
  }
}
