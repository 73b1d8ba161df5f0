// Pausing charging deployment-wide (an operator's brake, e.g. while Douyin has an
// incident or a bad deploy is rolled back): the `charge` queue is paused with
// BullMQ's own global pause, so no worker takes a charge job, and a run already
// under way checks the same flag right before its request leaves (charger.ts), so
// no DecrUserRemainTimes call starts while paused; calls already out finish.
// Ingestion goes on: events are written to the ledger and wait. Who paused, when
// and why is kept beside the flag for the dashboard and the CLI. With
// REDIS_WAIT_REPLICAS the pause and the resume are confirmed by the replicas like
// acknowledged events (replication.ts): a failover right after an operator's pause
// must not quietly undo it.
import type { Queue } from 'bullmq';
import { z } from 'zod';
import { chargingPaused } from '../metrics.js';
import type { ChargeJobData } from './queues.js';
import type { RedisClient } from './redis-connection.js';
import { type WaitReplicas, writeReplicated } from './replication.js';

export interface ChargingState {
  paused: boolean;
  /** Who paused it (an operator, or `cli:<user>`), when and why; absent when not paused. */
  by?: string;
  at?: string;
  reason?: string;
}

const infoKey = (prefix: string) => `${prefix}:charging-pause`;

export async function pauseCharging(
  queue: Queue<ChargeJobData>,
  redis: RedisClient,
  prefix: string,
  who: { by: string; reason?: string },
  /** Replicas that must have the pause (NotReplicatedError otherwise: it is in force on the master). */
  wait?: WaitReplicas,
): Promise<ChargingState> {
  const at = new Date().toISOString();
  await writeReplicated(redis, prefix, wait, async () => {
    await redis.hset(infoKey(prefix), { by: who.by, at, reason: who.reason ?? '' });
    await queue.pause();
  });
  chargingPaused.set(1);
  return { paused: true, by: who.by, at, ...(who.reason ? { reason: who.reason } : {}) };
}

/** Resumes; says since when it was paused (when known), so open batches' deadlines can move by as much. */
export async function resumeCharging(
  queue: Queue<ChargeJobData>,
  redis: RedisClient,
  prefix: string,
  wait?: WaitReplicas,
): Promise<{ state: ChargingState; pausedAt?: Date }> {
  const at = await redis.hget(infoKey(prefix), 'at');
  await writeReplicated(redis, prefix, wait, async () => {
    await queue.resume();
    await redis.del(infoKey(prefix));
  });
  chargingPaused.set(0);
  const pausedAt = at ? new Date(at) : undefined;
  return { state: { paused: false }, ...(pausedAt && !Number.isNaN(pausedAt.getTime()) ? { pausedAt } : {}) };
}

/** A pause's reason: what the API and the CLI accept. */
export const pauseReason = z
  .string()
  .max(500, 'must be at most 500 characters')
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
  .regex(/^[^\x00-\x1f\x7f]*$/, 'must not contain control characters');

export async function chargingState(
  queue: Queue<ChargeJobData>,
  redis: RedisClient,
  prefix: string,
): Promise<ChargingState> {
  const [paused, info] = await Promise.all([queue.isPaused(), redis.hgetall(infoKey(prefix))]);
  chargingPaused.set(paused ? 1 : 0);
  if (!paused) return { paused };
  return {
    paused,
    ...(info.by ? { by: info.by } : {}),
    ...(info.at ? { at: info.at } : {}),
    ...(info.reason ? { reason: info.reason } : {}),
  };
}
