// Sends dead (or insufficient) batches again with the SAME out_trade_no and
// count: the batch and its events go back to open/batched with a new deadline,
// and the key's charge job is scheduled. Used by the CLI and the dashboard.
import type { Redis } from 'ioredis';
import type { PrismaClient } from '../generated/prisma/client.js';
import { createQueues, scheduleCharge } from '../queue/queues.js';

export interface ReplayDeps {
  db: PrismaClient;
  redis: Redis;
  prefix: string;
  /** New retry deadline, seconds from now. Default 86400. */
  deadlineSec?: number;
}

export interface ReplayResult {
  replayed: string[];
  skipped: { id: string; reason: string }[];
}

const REPLAYABLE = ['dead', 'insufficient'];

export async function replayBatches(
  deps: ReplayDeps,
  target: { id: bigint } | { allDead: true },
  actor: string,
): Promise<ReplayResult> {
  const { db } = deps;
  const candidates =
    'id' in target
      ? await db.chargeBatch.findMany({
          where: { id: target.id },
          select: { id: true, status: true, keyId: true, firstSeq: true, lastSeq: true },
        })
      : await db.chargeBatch.findMany({
          where: { status: 'dead' },
          select: { id: true, status: true, keyId: true, firstSeq: true, lastSeq: true },
        });
  const result: ReplayResult = { replayed: [], skipped: [] };
  if ('id' in target && candidates.length === 0)
    result.skipped.push({ id: String(target.id), reason: 'no such batch' });
  const keys = new Set<number>();
  const deadlineAt = new Date(Date.now() + (deps.deadlineSec ?? 86_400) * 1000);
  for (const b of candidates) {
    if (!REPLAYABLE.includes(b.status)) {
      result.skipped.push({
        id: String(b.id),
        reason: `status is ${b.status}; only dead or insufficient batches replay`,
      });
      continue;
    }
    const reopened = await db.$transaction(async (tx) => {
      const n = await tx.chargeBatch.updateMany({
        where: { id: b.id, status: { in: ['dead', 'insufficient'] } },
        data: { status: 'open', deadReason: null, finishedAt: null, deadlineAt, updatedAt: new Date() },
      });
      if (n.count === 0) return false;
      if (b.firstSeq !== null && b.lastSeq !== null) {
        // The batch's seq range with its key is the index path to its events.
        await tx.usageEvent.updateMany({
          where: { keyId: b.keyId, seq: { gte: b.firstSeq, lte: b.lastSeq }, batchId: b.id },
          data: { status: 'batched' },
        });
      }
      await tx.operatorAudit.create({
        data: { actor, action: 'batch.replay', target: String(b.id), details: { previousStatus: b.status } },
      });
      return true;
    });
    if (reopened) {
      result.replayed.push(String(b.id));
      keys.add(b.keyId);
    } else result.skipped.push({ id: String(b.id), reason: 'changed concurrently' });
  }
  if (keys.size > 0) {
    const queues = createQueues(deps.redis, deps.prefix);
    try {
      await scheduleCharge(queues.charge, keys, 0);
    } finally {
      await queues.close();
    }
  }
  return result;
}
