// Assembles a worker process: the `events` consumer, the `charge` consumer, the
// shared rate limiter, the sweeper, the reconciler and the notifier (webhooks).
// Many such processes may run at once.
import { hostname } from 'node:os';
import { type Job, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { PurchaseListReader } from '../balances/balance.js';
import { Reconciler } from '../balances/reconciler.js';
import type { Config } from '../config.js';
import { douyinReadLimiter } from '../douyin/client.js';
import { createDouyinClientFromConfig, douyinRateLimiter } from '../douyin/index.js';
import { createPgLedger } from '../ledger/pg-ledger.js';
import { chargingPaused, douyinCallDuration, rateLimitWait } from '../metrics.js';
import { startNotifier } from '../notify/notifier.js';
import {
  CHARGE_QUEUE,
  type ChargeJobData,
  createQueues,
  EVENTS_QUEUE,
  type EventsJobData,
  scheduleCharge,
} from '../queue/queues.js';
import { createRedis, type RedisClient } from '../queue/redis-connection.js';
import { redisKeyPrefix } from '../queue/redis-prefix.js';
import { meterBackoff } from './backoff.js';
import { Charger } from './charger.js';
import { RetryableChargeError } from './errors.js';
import type { MeterDouyinApi } from './interfaces.js';
import { startLedgerMaintenance } from './ledger-maintenance.js';
import { EventRecorder } from './record-events.js';
import { Sweeper } from './sweeper.js';

/** Outcomes after which the key's balance is checked for balance.low. */
const SETTLED = new Set(['charged', 'partial', 'insufficient', 'dead']);

/** A held key is looked at again no sooner than this (its hold may be about to end). */
const HELD_RECHECK_MIN_MS = 20;

export interface MeterWorker {
  readonly workerId: string;
  /** Finishes in-flight jobs (and their Douyin calls), then closes every connection. */
  close(): Promise<void>;
}

export interface MeterWorkerDeps {
  config: Config;
  logger: Logger;
  /** Douyin API; by default a DouyinMarketClient built from the config. */
  api?: MeterDouyinApi & { close?: () => Promise<void> };
}

export async function startMeterWorker({
  config,
  logger,
  api: givenApi,
}: MeterWorkerDeps): Promise<MeterWorker> {
  const workerId = `${hostname()}:${process.pid}`;
  // In a hash tag on a cluster: all the meter's keys in one slot (redis-prefix.ts).
  const prefix = redisKeyPrefix(config);
  // ioredis reconnects by itself after a Redis restart or failover; errors meanwhile are logged, not fatal.
  const connections: RedisClient[] = [];
  const connect = () => {
    // Commands wait for the connection instead of failing: BullMQ workers require it.
    const c = createRedis(config, { maxRetriesPerRequest: null });
    connections.push(c);
    c.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
    return c;
  };
  const redis = connect();
  // The worker's statements are all the ledger's own: plain pg (see pg-ledger.ts).
  const lockDuration = config.METER_STALL_SEC * 1000;
  const db = createPgLedger(config.DATABASE_URL!, {
    poolSize: config.DATABASE_POOL_SIZE,
    statementTimeoutMs: lockDuration,
  });
  // Ingestion has connections of its own, one per concurrent job, so that charging
  // (many short queries from many concurrent jobs) never queues it behind itself.
  const ingestDb = createPgLedger(config.DATABASE_URL!, {
    poolSize: config.METER_INGEST_CONCURRENCY,
  });
  const queues = createQueues(redis, prefix);

  // One limiter per process, shared by the charger and every client it makes: the
  // limiter alone decides when a call may leave.
  const limiter = douyinRateLimiter(config, redis, (slot) => rateLimitWait.observe(slot.waitedMs / 1000));
  const api =
    givenApi ??
    createDouyinClientFromConfig(config, redis, {
      limiter,
      // The partial policy's purchase-list read is part of charging: it takes a slot
      // of the shared limiter only, never waiting behind the apps' balance reads.
      beforeRead: undefined,
      logger,
      onCall: (e: { method: string; durationMs: number; outcome: string; kind?: string }) =>
        douyinCallDuration.observe(
          { method: e.method, outcome: e.outcome, kind: e.kind ?? 'none' },
          e.durationMs / 1000,
        ),
    });
  const charger = new Charger({
    // An operator's pause (src/queue/charging-pause.ts): BullMQ's own flag on the queue.
    isPaused: async () => {
      const paused = await queues.charge.isPaused();
      chargingPaused.set(paused ? 1 : 0);
      return paused;
    },
    db,
    api,
    limiter,
    logger,
    workerId,
    insufficientPolicy: config.METER_INSUFFICIENT_POLICY,
    maxEvents: config.METER_BATCH_MAX_EVENTS,
    maxCount: config.METER_BATCH_MAX_COUNT,
    deadlineSec: config.METER_RETRY_DEADLINE_SEC,
    windowMs: config.METER_BATCH_WINDOW_MS,
    holdBackMs: config.METER_BATCH_MAX_HOLD_MS,
    idempotencyWindowSec: config.DOUYIN_IDEMPOTENCY_WINDOW_SEC,
    // A run's lease lasts as long as its BullMQ job lock, so a crashed worker's keys are
    // taken over about when its jobs are; the run renews it at every step.
    leaseMs: lockDuration,
    callTimeoutMs: config.DOUYIN_TIMEOUT_MS,
  });
  const ingest = new EventRecorder({
    db: ingestDb,
    chargeQueue: queues.charge,
    windowMs: config.METER_BATCH_WINDOW_MS,
    keyCacheSize: config.METER_KEY_CACHE_SIZE,
  });

  // Reconciliation's and balance.low's reads take the reads' share of the QPS, like the server's.
  const reads = douyinReadLimiter(config, redis);
  const readDouyin: PurchaseListReader = {
    getUserServicePurchaseList: async (input, opts) => {
      await reads.acquire(opts?.signal);
      return api.getUserServicePurchaseList(input, opts);
    },
  };
  const notifier = startNotifier({
    db,
    connection: connect,
    prefix,
    logger,
    douyin: readDouyin,
    allowedHosts: config.NOTIFY_ALLOWED_HOSTS,
    retryBaseMs: config.NOTIFY_RETRY_BASE_MS,
    giveUpAfterSec: config.NOTIFY_GIVE_UP_AFTER_SEC,
    disableAfterSec: config.NOTIFY_DISABLE_AFTER_SEC,
    concurrency: config.NOTIFY_CONCURRENCY,
    lockDurationMs: lockDuration,
    backoffStrategy: meterBackoff({ baseMs: config.METER_RETRY_BASE_MS, maxMs: config.METER_RETRY_MAX_MS }),
  });

  // Partitions ahead and the retention, daily, by one worker at a time. It shares the
  // process's connection (its Worker adds the one it blocks on).
  const maintenance = await startLedgerMaintenance({
    connection: () => redis,
    prefix,
    databaseUrl: config.DATABASE_URL!,
    retentionDays: config.METER_RETENTION_DAYS,
    workerId,
    logger,
  });

  const common = {
    connection: connect(),
    prefix,
    lockDuration,
    stalledInterval: Math.max(1_000, Math.floor(lockDuration / 2)),
    // A job whose worker died is taken over, however often that happens: losing it is never right.
    maxStalledCount: 1_000_000,
    settings: {
      backoffStrategy: meterBackoff({ baseMs: config.METER_RETRY_BASE_MS, maxMs: config.METER_RETRY_MAX_MS }),
    },
  };

  const eventsWorker = new Worker<EventsJobData>(EVENTS_QUEUE, (job) => ingest.process(job), {
    ...common,
    concurrency: config.METER_INGEST_CONCURRENCY,
  });
  const chargeWorker = new Worker<ChargeJobData>(
    CHARGE_QUEUE,
    async (job: Job<ChargeJobData>) => {
      const { outcome, holdMsLeft } = await charger.chargeOrHold(job.data.keyId);
      // Events that arrived during this run schedule their key themselves, but the
      // ingest side throttles that to once per window per process: one cheap look
      // here gives a key with work left its next run without waiting for the sweeper.
      // A held key is looked at again when its hold would end (sooner than the
      // window: a key whose burst stopped is charged half a window after it).
      // Paused: the key is looked at again after the window; the job waits in the
      // paused queue until an operator resumes charging.
      if (outcome === 'paused')
        await scheduleCharge(queues.charge, [job.data.keyId], config.METER_BATCH_WINDOW_MS);
      else if (outcome === 'held')
        await scheduleCharge(
          queues.charge,
          [job.data.keyId],
          Math.max(HELD_RECHECK_MIN_MS, Math.ceil(holdMsLeft!)),
        );
      else if (outcome !== 'idle' && (await charger.hasPendingEvents(job.data.keyId)))
        await scheduleCharge(queues.charge, [job.data.keyId], config.METER_BATCH_WINDOW_MS);
      if (SETTLED.has(outcome))
        await notifier.afterSettled(job.data.keyId).catch((err: Error) =>
          // The next settled run asks again; the charge itself is done.
          logger.warn({ keyId: job.data.keyId, err: err.message }, 'balance.low check not scheduled'),
        );
      return outcome;
    },
    { ...common, connection: connect(), concurrency: config.METER_CHARGE_CONCURRENCY },
  );
  for (const w of [eventsWorker, chargeWorker]) {
    w.on('error', (err) => logger.warn({ err: err.message, queue: w.name }, 'worker error'));
    w.on('failed', (job, err) => {
      if (err instanceof RetryableChargeError) return; // recorded as an attempt already
      logger.warn({ queue: w.name, jobId: job?.id, err: err.message }, 'job failed; it will be retried');
    });
  }

  const reconciler =
    config.METER_RECONCILE_INTERVAL_SEC > 0
      ? new Reconciler({
          db,
          redis,
          prefix,
          douyin: readDouyin,
          intervalMs: config.METER_RECONCILE_INTERVAL_SEC * 1000,
          workerId,
          logger,
        })
      : undefined;
  reconciler?.start();

  const sweeper = new Sweeper({
    db,
    redis,
    lockKey: `${prefix}:sweeper`,
    chargeQueue: queues.charge,
    intervalMs: Math.max(1_000, config.METER_BATCH_WINDOW_MS),
    staleAfterMs: 2 * config.METER_BATCH_WINDOW_MS + 2_000,
    logger,
  });
  sweeper.start();
  logger.info(
    { workerId, qps: config.DOUYIN_QPS, policy: config.METER_INSUFFICIENT_POLICY },
    'worker started',
  );

  return {
    workerId,
    async close() {
      await sweeper.stop();
      await reconciler?.stop();
      await Promise.all([eventsWorker.close(), chargeWorker.close()]);
      await notifier.close();
      await maintenance.close();
      await queues.close();
      if (!givenApi) await (api as { close?: () => Promise<void> }).close?.();
      await Promise.all([db.$disconnect(), ingestDb.$disconnect()]);
      for (const c of connections) c.disconnect();
      logger.info({ workerId }, 'worker stopped');
    },
  };
}
