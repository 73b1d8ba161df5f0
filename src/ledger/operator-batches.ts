// The ledger statements behind an operator's replay and resolve of a finished
// batch (src/metering/replay.ts, resolve.ts). Each runs inside the caller's
// durable transaction, after lockFinishedBatch has locked the batch's row.
import type { Sql } from './db.js';

export interface LockedBatch {
  id: bigint;
  keyId: number;
  status: string;
  parentId: bigint | null;
  count: number;
  outTradeNo: string;
  firstAttemptAt: Date | null;
  /** The logid of a success answer Douyin gave for this out_trade_no, if any: it was deducted. */
  successLogid: string | null | undefined;
  /** The batch's derived (partial policy) batches that are dead: their outcome is unknown. */
  deadDerived: { id: bigint; count: number; outTradeNo: string; firstAttemptAt: Date | null }[];
}

/** Locks the batch's row (and its dead derived batches') until the transaction ends, and reads what replay and resolve check. */
export async function lockFinishedBatch(tx: Sql, id: bigint): Promise<LockedBatch | undefined> {
  const rows = await tx.$queryRaw<Omit<LockedBatch, 'deadDerived' | 'successLogid'>[]>`
    SELECT id, key_id AS "keyId", status::text AS status, parent_id AS "parentId", count,
           out_trade_no AS "outTradeNo", first_attempt_at AS "firstAttemptAt"
    FROM charge_batch WHERE id = ${id} FOR UPDATE`;
  if (!rows[0]) return undefined;
  const deadDerived = await tx.$queryRaw<LockedBatch['deadDerived']>`
    SELECT id, count, out_trade_no AS "outTradeNo", first_attempt_at AS "firstAttemptAt" FROM charge_batch
    WHERE parent_id = ${id} AND status = 'dead' ORDER BY id FOR UPDATE`;
  const success = await tx.$queryRaw<{ logid: string | null }[]>`
    SELECT logid FROM call_attempt WHERE batch_id = ${id} AND outcome = 'success' LIMIT 1`;
  return { ...rows[0], deadDerived, successLogid: success[0] ? success[0].logid : undefined };
}

/** Dead or insufficient batches a bulk replay considers: parents only, oldest first. */
export async function deadParentBatchIds(tx: Sql): Promise<bigint[]> {
  const rows = await tx.$queryRaw<{ id: bigint }[]>`
    SELECT id FROM charge_batch WHERE status = 'dead' AND parent_id IS NULL ORDER BY id`;
  return rows.map((r) => r.id);
}

/** Back to open with a new deadline (its events are batched again with it). */
export async function reopenBatch(tx: Sql, id: bigint, deadlineAt: Date): Promise<void> {
  await tx.$executeRaw`
    UPDATE charge_batch SET status = 'open', dead_reason = NULL, finished_at = NULL,
           deadline_at = ${deadlineAt}, updated_at = now()
    WHERE id = ${id} AND status IN ('dead', 'insufficient')`;
}

/** An operator says the batch was deducted on Douyin: charged, with no call. */
export async function resolveBatchAsCharged(tx: Sql, id: bigint, actor: string): Promise<void> {
  await tx.$executeRaw`
    UPDATE charge_batch SET status = 'charged', charged_count = count, overage_count = 0,
           resolved_as = 'charged', resolved_by = ${actor}, finished_at = now(), updated_at = now()
    WHERE id = ${id} AND status IN ('dead', 'insufficient')`;
}

/**
 * An operator says the batch was not deducted: it is voided (its out_trade_no is
 * never sent again) and a successor batch takes its range of events, count and
 * all, under a new out_trade_no, stored before its first call like any batch.
 */
export async function resolveBatchAsUncharged(
  tx: Sql,
  id: bigint,
  actor: string,
  successor: { outTradeNo: string; deadlineSec: number },
): Promise<void> {
  await tx.$executeRaw`
    WITH voided AS (
      UPDATE charge_batch SET status = 'voided', resolved_as = 'uncharged', resolved_by = ${actor},
             finished_at = now(), updated_at = now()
      WHERE id = ${id} AND status IN ('dead', 'insufficient')
      RETURNING key_id, count, event_count, first_seq, last_seq
    )
    INSERT INTO charge_batch (key_id, out_trade_no, count, event_count, first_seq, last_seq, deadline_at)
    SELECT key_id, ${successor.outTradeNo}, count, event_count, first_seq, last_seq,
           now() + make_interval(secs => ${successor.deadlineSec})
    FROM voided`;
}

/**
 * A dead derived batch (partial policy) that Douyin did deduct: charged, and its
 * parent partial with that many uses charged, the rest overage.
 */
export async function resolveDerivedAsCharged(tx: Sql, id: bigint, actor: string): Promise<void> {
  await tx.$executeRaw`
    UPDATE charge_batch SET status = 'charged', charged_count = count, resolved_as = 'charged',
           resolved_by = ${actor}, finished_at = now(), updated_at = now()
    WHERE id = ${id} AND status = 'dead'`;
}

/** A dead derived batch Douyin did not deduct: voided, never sent again; its parent stays as it is. */
export async function resolveDerivedAsUncharged(tx: Sql, id: bigint, actor: string): Promise<void> {
  await tx.$executeRaw`
    UPDATE charge_batch SET status = 'voided', resolved_as = 'uncharged', resolved_by = ${actor},
           finished_at = now(), updated_at = now()
    WHERE id = ${id} AND status = 'dead'`;
}

/**
 * After charging was paused for `pausedSec`: every open batch's retry deadline moves
 * forward by as much (a pause is not the batch's failure), never past its last safe
 * send (`safeSendSec` after its first attempt, 90% of Douyin's idempotency window)
 * and never earlier than it was. Returns how many batches moved.
 */
export async function extendOpenBatchDeadlines(
  db: Sql,
  pausedSec: number,
  safeSendSec: number,
): Promise<number> {
  return db.$executeRaw`
    UPDATE charge_batch SET updated_at = now(), deadline_at = GREATEST(deadline_at,
      CASE WHEN first_attempt_at IS NULL THEN deadline_at + make_interval(secs => ${pausedSec}::float8)
           ELSE LEAST(deadline_at + make_interval(secs => ${pausedSec}::float8),
                      first_attempt_at + make_interval(secs => ${safeSendSec}::float8)) END)
    WHERE status = 'open'`;
}
