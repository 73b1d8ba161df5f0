// Everything the simulator knows and counts, shared by the HTTP routes and the
// programmatic RunningSimulator handle.
import { performance } from 'node:perf_hooks';
import { DEFAULT_FAULTS, parseFaultsPatch } from './faults.js';
import { MarketStore } from './store.js';
import { TokenStore } from './tokens.js';
import type { BalanceInput, SimulatorCalls, SimulatorFaults, SimulatorState } from './types.js';
import { SlidingWindow } from './window.js';

export interface CoreOptions {
  clientKey: string;
  clientSecret: string;
  tokenTtlSec: number;
  faults?: Partial<SimulatorFaults>;
}

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
    maxPerSecond: 0,
  };
}

export class SimulatorCore {
  readonly store = new MarketStore();
  readonly tokens: TokenStore;
  faults: SimulatorFaults;
  calls = emptyCalls();
  /** Every business call received, for maxPerSecond. */
  private received = new SlidingWindow(1000);
  /** Business calls let through the QPS limit. */
  private admitted = new SlidingWindow(1000);
  /** Pending latency and hang timers, cleared on close so nothing outlives the server. */
  private timers = new Set<NodeJS.Timeout>();

  constructor(readonly options: CoreOptions) {
    this.tokens = new TokenStore(options.tokenTtlSec);
    this.faults = { ...DEFAULT_FAULTS, ...parseFaultsPatch(options.faults ?? {}) };
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

  setBalance(b: BalanceInput): void {
    if (!b.openId || !b.serviceId || !b.serviceModeId) throw new Error('setBalance: ids must be non-empty');
    if (!Number.isSafeInteger(b.remaining) || b.remaining < 0) {
      throw new Error('setBalance: remaining must be a non-negative integer');
    }
    this.store.setBalance(b);
  }

  /** Issued tokens stay valid (use expireTokens); everything else starts over. */
  reset(): void {
    this.store.clear();
    this.calls = emptyCalls();
    this.received.clear();
    this.admitted.clear();
    this.tokens.resetCounter();
    this.faults = { ...DEFAULT_FAULTS };
  }

  state(): SimulatorState {
    return {
      balances: this.store.balances(),
      trades: this.store.tradeList(),
      tokensIssued: this.tokens.issued,
      calls: { ...this.calls, byPath: { ...this.calls.byPath } },
    };
  }
}
