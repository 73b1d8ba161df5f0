// Applies one charger decision (src/metering/decide.ts) to the ledger in one
// durable transaction, guarded by the run's key lease. Douyin's answers are facts
// and are never dropped: when the run lost its lease or the batch was no longer
// open, the attempt is still recorded; a success still settles a batch that was
// open, dead or insufficient (Douyin did deduct it), and raises an alert.
import type { PrismaClient } from '../generated/prisma/client.js';
import { durably } from './durable.js';
import { holdsKeyLease, type KeyLease } from './key-lease.js';
import {
  type AttemptRecord,
  type BatchRow,
  createDerivedBatch,
  recordAttempt,
  type Sql,
  settleBatch,
  settlePartialParent,
} from './sql.js';

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

export type Applied = { applied: true } | { applied: false; why: 'lease_lost' | 'not_open' };

export async function applyDecision(
  db: PrismaClient,
  lease: KeyLease,
  batch: BatchRow,
  attempt: AttemptRecord | null,
  step: LedgerStep,
): Promise<Applied> {
  return durably(db, async (tx): Promise<Applied> => {
    const leased = await holdsKeyLease(tx, lease);
    if (leased && (await applyStep(tx, batch, attempt, step))) return { applied: true };
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
