// Types shared by the metering modules.
import type { Logger } from 'pino';
import type { CallOptions } from '../douyin/client.js';
import type { RateLimiter } from '../douyin/rate-limiter.js';
import type { DecrUserRemainTimesInput } from '../douyin/schemas.js';
import type { Ledger } from '../ledger/pg-ledger.js';

/** The two Douyin methods the worker uses (DouyinMarketClient implements them). */
export interface MeterDouyinApi {
  decrUserRemainTimes(
    input: DecrUserRemainTimesInput,
    opts?: CallOptions,
  ): Promise<{ logid: string; httpStatus: number; description: string }>;
  getUserServicePurchaseList(
    input: { openId: string; serviceId: string; isTestEnv?: boolean },
    opts?: CallOptions,
  ): Promise<{ purchaseInfoList: { serviceModeId: string; remainServiceTimes?: number }[] }>;
}

export type InsufficientPolicy = 'reject' | 'partial';

export interface ChargerOptions {
  db: Ledger;
  api: MeterDouyinApi;
  limiter: RateLimiter;
  logger: Logger;
  workerId: string;
  /** What to do when the user's remaining times are below the batch count. Default 'reject'. */
  insufficientPolicy: InsufficientPolicy;
  /** The batching window (METER_BATCH_WINDOW_MS). */
  windowMs: number;
  /**
   * The longest a key's batch waits while its events keep arriving, ms
   * (METER_BATCH_MAX_HOLD_MS; config default 5000). 0 (the default here): never waits.
   */
  holdBackMs?: number;
  /** Most events in one batch. */
  maxEvents: number;
  /** Most uses (summed count) in one batch; at most int32. */
  maxCount: number;
  /** Seconds a batch is retried before it goes dead. */
  deadlineSec: number;
  /** Douyin's idempotency window (DOUYIN_IDEMPOTENCY_WINDOW_SEC): no batch is sent past 90% of it. */
  idempotencyWindowSec: number;
  /** How long a run's lease on its key lasts without renewal, ms (METER_STALL_SEC). */
  leaseMs: number;
  /**
   * The longest a Douyin call may take (DOUYIN_TIMEOUT_MS): a call leaves only with at
   * least this much lease left, so no other run can take the key over while it is out.
   * Default 10000.
   */
  callTimeoutMs?: number;
  /** How far a "too frequent" answer pushes the deployment's next call back, ms. Default 1000. */
  rateLimitPenaltyMs?: number;
  /**
   * Whether an operator paused charging (src/queue/charging-pause.ts): asked before a
   * run takes its key and right before its request leaves. Default: never paused.
   */
  isPaused?: () => Promise<boolean>;
}
