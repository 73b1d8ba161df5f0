// Applies one charger decision (src/metering/decide.ts) to the ledger in one
// durable transaction, guarded by the run's key lease. Douyin's answers are facts
// and are never dropped: when the run lost its lease or the batch was no longer
// open, the attempt is still recorded; a success still settles a batch that was
// open, dead or insufficient (Douyin did deduct it), and raises an alert.

import { type AttemptRecord, recordAttempt } from './attempts.js';
import { type BatchRow, createDerivedBatch, settleBatch, settlePartialParent } from './batches.js';
import type { Sql } from './db.js';
import { DURABLE_COMMIT, durably } from './durable.js';
import { assertDistinctKeys, holdsKeyLease, type KeyLease, LEASES_LOCKED_IN_KEY_ORDER } from './key-lease.js';
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
  o: {
    /** The run ends with this step: the common steps then end its lease in the same statement. */
    endsRun?: boolean;
    /** Runs a common step (by default applyCommonSteps alone; a charger coalesces its runs' steps). */
    common?: (s: CommonStep) => Promise<boolean>;
  } = {},
): Promise<Applied> {
  // The common steps in one durable statement; anything else, or a step this run
  // may no longer apply, in a transaction.
  const common = commonStep(lease, batch, attempt, step, o.endsRun === true);
  const runCommon = o.common ?? (async (s: CommonStep) => (await applyCommonSteps(db, [s]))[0]!);
  if (common && (await runCommon(common))) return { applied: true, released: common.release };
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

/** A step applyCommonSteps can take: a plain batch charged, or a failed attempt recorded. */
export interface CommonStep {
  lease: KeyLease;
  batch: BatchRow;
  attempt: AttemptRecord;
  charged: boolean;
  /** The statement also ends the run's lease. */
  release: boolean;
}

/** The common step this decision is, if it is one. */
function commonStep(
  lease: KeyLease,
  b: BatchRow,
  a: AttemptRecord | null,
  step: LedgerStep,
  release: boolean,
): CommonStep | undefined {
  if (!a) return undefined;
  const charged = step.kind === 'charged' && b.parentId === null && a.outcome === 'success';
  if (!charged && step.kind !== 'record_attempt') return undefined;
  return { lease, batch: b, attempt: a, charged, release };
}

/**
 * Common steps of runs on distinct keys, each with its lease check, in one durable
 * statement; whether each applied, in order. One that did not apply wrote no batch
 * or attempt; its lease, if still its run's, was renewed (or ended) all the same.
 */
export async function applyCommonSteps(db: Sql, steps: readonly CommonStep[]): Promise<boolean[]> {
  assertDistinctKeys(steps.map((s) => s.lease.keyId));
  const req = JSON.stringify(
    steps.map(({ lease, batch, attempt: a, charged, release }, i) => ({
      i,
      key_id: lease.keyId,
      token: String(lease.token),
      lease_sec: lease.leaseMs / 1000,
      release,
      batch_id: String(batch.id),
      charged,
      out_trade_no: a.outTradeNo,
      count: a.count,
      started_at: a.startedAt.toISOString(),
      duration_ms: a.durationMs,
      http_status: a.httpStatus,
      error_code: a.errorCode,
      sub_error_code: a.subErrorCode,
      description: a.description,
      logid: a.logid,
      outcome: a.outcome,
      error_kind: a.errorKind,
      worker_id: a.workerId,
    })),
  );
  const rows = await db.$queryRaw<{ i: number; applied: boolean }[]>`
    WITH durable AS (${DURABLE_COMMIT}),
    r AS (
      SELECT * FROM jsonb_to_recordset(${req}::jsonb) AS r(i int, key_id int, token bigint, lease_sec float8,
        release boolean, batch_id bigint, charged boolean, out_trade_no text, count int, started_at timestamptz,
        duration_ms int, http_status int, error_code int, sub_error_code int, description text, logid text,
        outcome text, error_kind text, worker_id text)
    ), locked AS MATERIALIZED (${LEASES_LOCKED_IN_KEY_ORDER}
    ), l AS (
      UPDATE key_lease kl
      SET until = CASE WHEN r.release THEN NULL ELSE now() + make_interval(secs => r.lease_sec) END,
          owner = CASE WHEN r.release THEN NULL ELSE kl.owner END
      FROM r WHERE (SELECT count(*) FROM locked) >= 0 AND kl.key_id = r.key_id AND kl.token = r.token
      RETURNING r.i
    ), b AS (
      UPDATE charge_batch cb SET attempts = cb.attempts + 1, updated_at = now(),
             status = CASE WHEN r.charged THEN 'charged'::batch_status ELSE cb.status END,
             charged_count = CASE WHEN r.charged THEN cb.count ELSE cb.charged_count END,
             finished_at = CASE WHEN r.charged THEN now() ELSE cb.finished_at END,
             last_error_kind = COALESCE(r.error_kind, cb.last_error_kind),
             last_error_code = CASE WHEN r.outcome = 'error' THEN r.error_code ELSE cb.last_error_code END,
             last_error = CASE WHEN r.outcome = 'error' THEN r.description ELSE cb.last_error END
      FROM r WHERE cb.id = r.batch_id AND cb.status = 'open' AND r.i IN (SELECT i FROM l)
      RETURNING r.i, cb.id, cb.attempts
    ), att AS (
      INSERT INTO call_attempt (batch_id, attempt_no, out_trade_no, count, started_at, duration_ms, http_status,
                                error_code, sub_error_code, description, logid, outcome, error_kind, worker_id)
      SELECT b.id, b.attempts, r.out_trade_no, r.count, r.started_at, r.duration_ms, r.http_status,
             r.error_code, r.sub_error_code, r.description, r.logid, r.outcome, r.error_kind, r.worker_id
      FROM b JOIN r ON r.i = b.i
    )
    SELECT r.i, EXISTS (SELECT 1 FROM b WHERE b.i = r.i) AS applied
    FROM (SELECT count(*) FROM durable) d CROSS JOIN r`;
  const applied = new Map(rows.map((r) => [r.i, r.applied]));
  return steps.map((_, i) => applied.get(i)!);
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
