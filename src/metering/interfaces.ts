// Types shared by the metering modules.
import type { Logger } from 'pino';
import type { CallOptions } from '../douyin/client.js';
import type { RateLimiter } from '../douyin/rate-limiter.js';
import type { DecrUserRemainTimesInput } from '../douyin/schemas.js';
import type { PrismaClient } from '../generated/prisma/client.js';

/** The two Douyin methods the worker uses (DouyinMarketClient implements them). */
export interface MeterDouyinApi {
  decrUserRemainTimes(
    input: DecrUserRemainTimesInput,
    opts?: CallOptions,
  ): Promise<{ logid: string; httpStatus: number; description: string }>;
  getUserServicePurchaseList(
    input: { openId: string; serviceId: string },
    opts?: CallOptions,
  ): Promise<{ purchaseInfoList: { serviceModeId: string; remainServiceTimes?: number }[] }>;
}

export type InsufficientPolicy = 'reject' | 'partial';

export interface ChargerOptions {
  db: PrismaClient;
  api: MeterDouyinApi;
  limiter: RateLimiter;
  logger: Logger;
  workerId: string;
  /** What to do when the user's remaining times are below the batch count. Default 'reject'. */
  insufficientPolicy: InsufficientPolicy;
  /** Most events in one batch. */
  maxEvents: number;
  /** Most uses (summed count) in one batch; at most int32. */
  maxCount: number;
  /** Seconds a batch is retried before it goes dead. */
  deadlineSec: number;
  /** How far a "too frequent" answer pushes the deployment's next call back, ms. Default 1000. */
  rateLimitPenaltyMs?: number;
}
