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
  /** Epoch ms when the deduction was applied. */
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
  /** The most business calls received within any sliding 1000 ms window. */
  maxPerSecond: number;
}

/** The JSON returned by GET /_sim/state. */
export interface SimulatorState {
  balances: SimulatorBalance[];
  /** Accepted decr calls, one per out_trade_no. */
  trades: SimulatorTrade[];
  /** Successful token fetches. */
  tokensIssued: number;
  calls: SimulatorCalls;
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
  /** Sets remaining times directly (creates the purchase bucket). */
  setBalance(b: BalanceInput): void;
  /** Every token issued so far expires now. */
  expireTokens(): void;
  /** Clears balances, purchases, trades, counters and faults (back to the defaults). */
  reset(): void;
  close(): Promise<void>;
}
