// An operator's decision on a dead or insufficient batch, after checking the
// user's remaining times on Douyin: `charged` settles it without a call (Douyin
// did deduct it), `uncharged` voids it and puts its events in a successor batch,
// charged under a new out_trade_no (Douyin did not). This is the way out for a
// batch past Douyin's idempotency window, which is never sent again. Audited.
//
// Partial policy: a dead derived batch is resolved first, on its own (charged makes
// its parent partial; uncharged voids it), then its parent if still dead. A batch
// Douyin answered success for is never resolved as uncharged.

import type { PrismaClient } from '../generated/prisma/client.js';
import { settlePartialParent } from '../ledger/batches.js';
import type { Sql } from '../ledger/db.js';
import {
  type LockedBatch,
  lockFinishedBatch,
  resolveBatchAsCharged,
  resolveBatchAsUncharged,
  resolveDerivedAsCharged,
  resolveDerivedAsUncharged,
} from '../ledger/operator-batches.js';
import { scheduleChargeNow } from '../queue/queues.js';
import type { RedisClient } from '../queue/redis-connection.js';
import { actOnBatches } from './batch-actions.js';
import { newOutTradeNo } from './out-trade-no.js';

export type Resolution = 'charged' | 'uncharged';

export interface ResolveDeps {
  db: PrismaClient;
  redis: RedisClient;
  prefix: string;
  /** Retry deadline of the batch that charges an uncharged one's events again. Default 86400. */
  deadlineSec?: number;
}

export interface ResolveResult {
  resolved: string[];
  skipped: { id: string; reason: string }[];
}

const RESOLVABLE = ['dead', 'insufficient'];

export async function resolveBatches(
  deps: ResolveDeps,
  ids: bigint[],
  as: Resolution,
  actor: string,
): Promise<ResolveResult> {
  // Derived batches first (partial policy): a parent resolves only once its dead
  // derived batch is resolved, whatever order the ids were given in.
  const derived = new Set(
    (
      await deps.db.$queryRaw<{ id: bigint }[]>`
        SELECT id FROM charge_batch WHERE id = ANY(${ids.map(String)}::bigint[]) AND parent_id IS NOT NULL`
    ).map((r) => String(r.id)),
  );
  const ordered = [
    ...ids.filter((id) => derived.has(String(id))),
    ...ids.filter((id) => !derived.has(String(id))),
  ];
  const r = await actOnBatches(deps.db, ordered, (tx, id) => resolveOne(tx, id, as, actor, deps.deadlineSec));
  // A successor batch (resolved as uncharged) is charged now, not at the sweeper's pace.
  if (as === 'uncharged') await scheduleChargeNow(deps.redis, deps.prefix, r.keys);
  return { resolved: r.done, skipped: r.skipped };
}

async function resolveOne(
  tx: Sql,
  id: bigint,
  as: Resolution,
  actor: string,
  deadlineSec: number | undefined,
): Promise<LockedBatch | string> {
  const b = await lockFinishedBatch(tx, id);
  if (!b) return 'no such batch';
  if (!RESOLVABLE.includes(b.status))
    return `status is ${b.status}; only dead or insufficient batches resolve`;
  if (as === 'uncharged' && b.successLogid !== undefined) {
    return `Douyin answered success for ${b.outTradeNo} (logid ${b.successLogid ?? 'none'}): it was deducted; resolve it as charged`;
  }
  if (b.parentId !== null) {
    // A derived batch (partial policy) whose outcome is unknown: the operator says
    // whether Douyin deducted it; charged makes its parent partial.
    if (as === 'charged') {
      await resolveDerivedAsCharged(tx, b.id, actor);
      await settlePartialParent(tx, b.parentId, b.count);
    } else await resolveDerivedAsUncharged(tx, b.id, actor);
  } else {
    const [derived] = b.deadDerived;
    if (derived) {
      return `its derived batch ${derived.id} (${derived.outTradeNo}, ${derived.count} uses) is dead: resolve that one first (charged if Douyin deducted it), or replay this batch`;
    }
    if (as === 'charged') await resolveBatchAsCharged(tx, b.id, actor);
    else
      await resolveBatchAsUncharged(tx, b.id, actor, {
        outTradeNo: newOutTradeNo(),
        deadlineSec: deadlineSec ?? 86_400,
      });
  }
  await tx.$executeRaw`
    INSERT INTO operator_audit (actor, action, target, details)
    VALUES (${actor}, 'batch.resolve', ${String(b.id)},
            jsonb_build_object('as', ${as}::text, 'previousStatus', ${b.status}::text, 'count', ${b.count}::int,
                               'outTradeNo', ${b.outTradeNo}::text))`;
  return b;
}
