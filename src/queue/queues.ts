// The two BullMQ queues of the pipeline and the shapes of their jobs.
//
// - `events`: producers' usage events, many per job (enqueueing in bulk is what
//   makes ingestion fast). The worker writes them to the ledger, deduplicated.
// - `charge`: one job per batching key, deduplicated by key. The job forms the
//   key's batch from whatever is pending when it runs (so the batch keeps filling
//   while the job waits for the rate limiter) and makes the Douyin call.
import { type ConnectionOptions, Queue } from 'bullmq';
import type { UsageEvent } from '../events/schema.js';
import type { RedisClient } from './redis-connection.js';

export const EVENTS_QUEUE = 'events';
export const CHARGE_QUEUE = 'charge';

export type EventSource = 'sdk' | 'http' | 'import';

export interface EventsJobData {
  events: UsageEvent[];
  source: EventSource;
}

export interface ChargeJobData {
  keyId: number;
}

/** Events per `events` job: large enough for bulk inserts, small enough for Redis. */
export const EVENTS_PER_JOB = 1000;

// Ingestion must survive a PostgreSQL outage of any length: retry (almost) forever.
const eventsJobOptions = {
  attempts: 1_000_000,
  backoff: { type: 'meter' },
  removeOnComplete: { count: 1_000 },
  removeOnFail: false,
};

const chargeJobOptions = {
  attempts: 1_000_000,
  backoff: { type: 'meter' },
  removeOnComplete: { count: 1_000 },
  removeOnFail: { count: 10_000 },
};

export interface MeterQueues {
  events: Queue<EventsJobData>;
  charge: Queue<ChargeJobData>;
  close(): Promise<void>;
}

export function createQueues(connection: ConnectionOptions, prefix: string): MeterQueues {
  const events = new Queue<EventsJobData>(EVENTS_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: eventsJobOptions,
  });
  const charge = new Queue<ChargeJobData>(CHARGE_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: chargeJobOptions,
  });
  return {
    events,
    charge,
    async close() {
      await Promise.all([events.close(), charge.close()]);
    },
  };
}

/**
 * Age in seconds of the oldest `events` job no worker has written to the ledger
 * yet, null when there is none. Reads job ids and one field each, not the events.
 */
export async function oldestEventsJobAgeSec(
  events: Queue<EventsJobData>,
  redis: RedisClient,
): Promise<number | null> {
  const ids = await events.getRanges(['waiting', 'prioritized', 'active', 'delayed'], 0, 0, true);
  if (ids.length === 0) return null;
  const stamps = await Promise.all(ids.map((id) => redis.hget(events.toKey(id), 'timestamp')));
  const oldest = Math.min(...stamps.filter((t): t is string => t !== null).map(Number));
  return Number.isFinite(oldest) ? Math.max(0, (Date.now() - oldest) / 1000) : null;
}

/** Enqueues validated events in jobs of EVENTS_PER_JOB; resolves once Redis has them. */
export async function enqueueEvents(
  queue: Queue<EventsJobData>,
  events: UsageEvent[],
  source: EventSource,
): Promise<void> {
  const jobs: { name: string; data: EventsJobData }[] = [];
  for (let i = 0; i < events.length; i += EVENTS_PER_JOB) {
    jobs.push({ name: 'events', data: { events: events.slice(i, i + EVENTS_PER_JOB), source } });
  }
  if (jobs.length > 0) await queue.addBulk(jobs);
}

/** Schedules the charge job of these keys (deduplicated per key across the deployment). */
export async function scheduleCharge(
  queue: Queue<ChargeJobData>,
  keyIds: Iterable<number>,
  delayMs: number,
): Promise<void> {
  const jobs = [...keyIds].map((keyId) => ({
    name: 'charge',
    data: { keyId },
    opts: {
      delay: delayMs,
      // At most one job per key is waiting and one active; an add while the job is
      // active is kept and becomes the next job when the active one finishes.
      deduplication: { id: `key:${keyId}`, keepLastIfActive: true },
    },
  }));
  if (jobs.length > 0) await queue.addBulk(jobs);
}

/**
 * Schedules these keys' charge jobs now, from a process that has no queues of its
 * own open (an operator's replay or resolve, from the CLI or the server).
 */
export async function scheduleChargeNow(
  redis: RedisClient,
  prefix: string,
  keyIds: Set<number>,
): Promise<void> {
  if (keyIds.size === 0) return;
  const queues = createQueues(redis, prefix);
  try {
    await scheduleCharge(queues.charge, keyIds, 0);
  } finally {
    await queues.close();
  }
}
