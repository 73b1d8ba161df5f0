// Sends dead (or insufficient) batches again with the SAME out_trade_no and
// count: the batch and its events go back to open/batched with a new deadline,
// and the key's charge job is scheduled. Used by the CLI and the dashboard.
//
// Only what Douyin still deduplicates is replayed: a batch first sent longer ago
// than 90% of the idempotency window is skipped (an operator resolves it), and
// the new deadline never reaches past that point. Partial policy: only parents
// replay; a parent's dead derived batch is reopened with it and sent first, under
// its own out_trade_no, so the uses deducted for a parent never exceed its count.

import type { PrismaClient } from '../generated/prisma/client.js';
import type { Sql } from '../ledger/db.js';
import {
  deadParentBatchIds,
  type LockedBatch,
  lockFinishedBatch,
  reopenBatch,
} from '../ledger/operator-batches.js';
import { scheduleChargeNow } from '../queue/queues.js';
import type { RedisClient } from '../queue/redis-connection.js';
import { actOnBatches } from './batch-actions.js';
import { lastSafeSend, WINDOW_SAFE_FRACTION } from './decide.js';

export interface ReplayDeps {
  db: PrismaClient;
  redis: RedisClient;
  prefix: string;
  /** New retry deadline, seconds from now. Default 86400. */
  deadlineSec?: number;
  /** Douyin's idempotency window (DOUYIN_IDEMPOTENCY_WINDOW_SEC). Default one month. */
  idempotencyWindowSec?: number;
}

export interface ReplayResult {
  replayed: string[];
  skipped: { id: string; reason: string }[];
}

/** Douyin's documented idempotency window: one month. */
export const DEFAULT_IDEMPOTENCY_WINDOW_SEC = 2_592_000;

const REPLAYABLE = ['dead', 'insufficient'];

export async function replayBatches(
  deps: ReplayDeps,
  target: { id: bigint } | { ids: bigint[] } | { allDead: true },
  actor: string,
): Promise<ReplayResult> {
  const { db } = deps;
  const ids = 'id' in target ? [target.id] : 'ids' in target ? target.ids : await deadParentBatchIds(db);
  const r = await actOnBatches(db, ids, (tx, id) => replayOne(tx, deps, id, actor));
  await scheduleChargeNow(deps.redis, deps.prefix, r.keys);
  return { replayed: r.done, skipped: r.skipped };
}

/** Reopens one batch; returns it, or the reason it was skipped. */
async function replayOne(
  tx: Sql,
  deps: ReplayDeps,
  id: bigint,
  actor: string,
): Promise<LockedBatch | string> {
  const b = await lockFinishedBatch(tx, id);
  if (!b) return 'no such batch';
  if (b.parentId !== null) {
    return `derived batch of ${b.parentId} (partial policy): replay the parent, which sends this one first`;
  }
  if (!REPLAYABLE.includes(b.status))
    return `status is ${b.status}; only dead or insufficient batches replay`;
  if (b.deadDerived.length > 1) {
    return `${b.deadDerived.length} dead derived batches: resolve it with \`batches resolve\` after checking the user's remaining times`;
  }
  const windowSec = deps.idempotencyWindowSec ?? DEFAULT_IDEMPOTENCY_WINDOW_SEC;
  const now = new Date();
  const toReopen = [b, ...b.deadDerived];
  for (const r of toReopen) {
    if (r.firstAttemptAt && now >= lastSafeSend(r.firstAttemptAt, windowSec)) {
      return `idempotency_window: batch ${r.id} was first sent ${r.firstAttemptAt.toISOString()}, more than ${
        WINDOW_SAFE_FRACTION * 100
      }% of Douyin's ${windowSec} s idempotency window ago; a resend could deduct again. Check the user's remaining times and use \`batches resolve ${b.id} --as charged|uncharged\``;
    }
  }
  for (const r of toReopen) {
    const wanted = new Date(now.getTime() + (deps.deadlineSec ?? 86_400) * 1000);
    const safe = r.firstAttemptAt ? lastSafeSend(r.firstAttemptAt, windowSec) : wanted;
    await reopenBatch(tx, r.id, safe < wanted ? safe : wanted);
  }
  await tx.$executeRaw`
    INSERT INTO operator_audit (actor, action, target, details)
    VALUES (${actor}, 'batch.replay', ${String(b.id)},
            jsonb_build_object('previousStatus', ${b.status}::text,
                               'reopenedDerived', ${b.deadDerived.map((d) => String(d.id))}::text[]))`;
  return b;
}
