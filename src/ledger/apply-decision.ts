// Applies one charger decision (src/metering/decide.ts) to the ledger in one
// durable transaction, guarded by the run's key lease. Douyin's answers are facts
// and are never dropped: when the run lost its lease or the batch was no longer
// open, the attempt is still recorded; a success still settles a batch that was
// open, dead or insufficient (Douyin did deduct it), and raises an alert.

import { type AttemptRecord, recordAttempt } from './attempts.js';
import { type BatchRow, createDerivedBatch, settleBatch, settlePartialParent } from './batches.js';
import type { Sql } from './db.js';
import { DURABLE_COMMIT, durably } from './durable.js';
import { holdsKeyLease, type KeyLease, renewedLease } from './key-lease.js';
import type { Ledger } from './pg-ledger.js';

/** What the ledger does with a batch after a decision. */
export type LedgerStep =
  /** Charged; a derived batch's parent becomes partial (charged = this batch's count). */
  | { kind: 'charged' }
  /** The attempt is recorded; the batch stays open. */
  | { kind: 'record_attempt' }
  /** Dead; a derived batch's parent goes dead with it (its uses are unsettled). */
  | { kind: 'dead'; reason: string }
  | { kind: 'insufficient' }
  /** Partial policy: the parent is partial with nothing charged, every use overage. */
  | { kind: 'overage' }
  /** Partial policy: a new derived batch n of the parent, for `count` uses. */
  | { kind: 'derive'; n: number; count: number };

export type Applied =
  /** `released`: the statement also ended the run's lease (see `endsRun`). */
  { applied: true; released: boolean } | { applied: false; why: 'lease_lost' | 'not_open' };

export async function applyDecision(
  db: Ledger,
  lease: KeyLease,
  batch: BatchRow,
  attempt: AttemptRecord | null,
  step: LedgerStep,
  /** The run ends with this step: the common steps then end its lease in the same statement. */
  o: { endsRun?: boolean } = {},
): Promise<Applied> {
  // The common steps in one durable statement; anything else, or a step this run
  // may no longer apply, in a transaction.
  if (attempt && (await applyInOneStatement(db, lease, batch, attempt, step, o.endsRun === true)))
    return { applied: true, released: o.endsRun === true };
  return durably(db, async (tx): Promise<Applied> => {
    const leased = await holdsKeyLease(tx, lease);
    if (leased && (await applyStep(tx, batch, attempt, step))) return { applied: true, released: false };
    const why = leased ? 'not_open' : 'lease_lost';
    if (attempt) {
      await recordAttempt(tx, attempt, { anyStatus: true });
      if (attempt.outcome === 'success') {
        const settled = await settleLateSuccess(tx, batch);
        await raiseAlert(tx, 'stray_success', attempt, { why, settledNow: settled });
      }
    }
    return { applied: false, why };
  });
}

/**
 * A plain batch charged, or a failed attempt recorded, with the lease check, in one
 * statement. False when it did not apply (then nothing changed).
 */
async function applyInOneStatement(
  db: Sql,
  lease: KeyLease,
  b: BatchRow,
  a: AttemptRecord,
  step: LedgerStep,
  release: boolean,
): Promise<boolean> {
  const charged = step.kind === 'charged' && b.parentId === null && a.outcome === 'success';
  if (!charged && step.kind !== 'record_attempt') return false;
  const rows = await db.$queryRaw<{ applied: boolean }[]>`
    WITH durable AS (${DURABLE_COMMIT}),
    l AS (${renewedLease(lease, { release })}),
    b AS (
      UPDATE charge_batch SET attempts = attempts + 1, updated_at = now(),
             status = CASE WHEN ${charged} THEN 'charged'::batch_status ELSE status END,
             charged_count = CASE WHEN ${charged} THEN count ELSE charged_count END,
             finished_at = CASE WHEN ${charged} THEN now() ELSE finished_at END,
             last_error_kind = COALESCE(${a.errorKind}, last_error_kind),
             last_error_code = CASE WHEN ${a.outcome} = 'error' THEN ${a.errorCode}::int ELSE last_error_code END,
             last_error = CASE WHEN ${a.outcome} = 'error' THEN ${a.description} ELSE last_error END
      WHERE id = ${b.id} AND status = 'open' AND EXISTS (SELECT 1 FROM l)
      RETURNING id, attempts
    ), att AS (
      INSERT INTO call_attempt (batch_id, attempt_no, out_trade_no, count, started_at, duration_ms, http_status,
                                error_code, sub_error_code, description, logid, outcome, error_kind, worker_id)
      SELECT b.id, b.attempts, ${a.outTradeNo}, ${a.count}, ${a.startedAt}, ${a.durationMs}, ${a.httpStatus},
             ${a.errorCode}, ${a.subErrorCode}, ${a.description}, ${a.logid}, ${a.outcome}, ${a.errorKind},
             ${a.workerId}
      FROM b
    )
    SELECT EXISTS (SELECT 1 FROM b) AS applied FROM (SELECT count(*) FROM durable) d`;
  return rows[0]!.applied;
}

async function applyStep(tx: Sql, b: BatchRow, a: AttemptRecord | null, step: LedgerStep): Promise<boolean> {
  switch (step.kind) {
    case 'charged':
      if (!(await settleBatch(tx, a, b.id, { status: 'charged' }))) return false;
      if (b.parentId !== null && !(await settlePartialParent(tx, b.parentId, b.count)) && a) {
        // Cannot happen while a derived batch is open only under an open parent; if it
        // ever does, the deduction stays recorded and an operator is told.
        await raiseAlert(tx, 'parent_not_open', a, { parentId: String(b.parentId) });
      }
      return true;
    case 'record_attempt':
      return a === null || (await recordAttempt(tx, a));
    case 'dead':
      if (!(await settleBatch(tx, a, b.id, { status: 'dead', reason: step.reason }))) return false;
      if (b.parentId !== null) {
        await settleBatch(tx, null, b.parentId, {
          status: 'dead',
          reason: `derived_dead: derived batch ${b.id} (${b.outTradeNo}) is dead: ${step.reason}`,
        });
      }
      return true;
    case 'insufficient':
      return settleBatch(tx, a, b.id, { status: 'insufficient' });
    case 'overage':
      return settlePartialParent(tx, b.id, 0);
    case 'derive':
      return createDerivedBatch(tx, b, step.n, step.count);
  }
}

/**
 * Douyin deducted this out_trade_no: a batch still open, or one that went dead or
 * insufficient meanwhile, is charged (a derived batch's parent becomes partial).
 * A voided batch stays voided: its uses were re-batched, which the alert reports.
 */
async function settleLateSuccess(tx: Sql, b: BatchRow): Promise<boolean> {
  const settled = await settleBatch(tx, null, b.id, { status: 'charged' }, ['open', 'dead', 'insufficient']);
  if (settled && b.parentId !== null) await settlePartialParent(tx, b.parentId, b.count);
  return settled;
}

async function raiseAlert(tx: Sql, kind: string, a: AttemptRecord, details: Record<string, unknown>) {
  await tx.$executeRaw`
    INSERT INTO charge_alert (kind, batch_id, out_trade_no, details)
    VALUES (${kind}, ${a.batchId}, ${a.outTradeNo},
            ${JSON.stringify({ ...details, count: a.count, logid: a.logid, workerId: a.workerId })}::jsonb)`;
}
