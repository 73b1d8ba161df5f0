// Charge batches (charge_batch): one DecrUserRemainTimes request each, its
// out_trade_no and count fixed before the first call. A batch holds its key's
// events in a range of seq; settling it writes the batch's row alone (the events'
// status follows from it, see events.ts).
import { Prisma } from '../generated/prisma/client.js';
import type { AttemptRecord } from './attempts.js';
import type { Sql } from './db.js';
import { DURABLE_COMMIT } from './durable.js';
import { assertDistinctKeys, type KeyLease, LEASES_LOCKED_IN_KEY_ORDER } from './key-lease.js';

export interface BatchRow {
  id: bigint;
  keyId: number;
  outTradeNo: string;
  count: number;
  eventCount: number;
  parentId: bigint | null;
  attempts: number;
  deadlineAt: Date;
  /** When its out_trade_no was first sent (null before that): the idempotency window's start. */
  firstAttemptAt: Date | null;
  openId: string;
  serviceId: string;
  serviceModeId: string;
  isTestEnv: boolean;
}

export const BATCH_COLUMNS = Prisma.raw(`b.id, b.key_id AS "keyId", b.out_trade_no AS "outTradeNo", b.count,
  b.event_count AS "eventCount", b.parent_id AS "parentId", b.attempts, b.deadline_at AS "deadlineAt",
  b.first_attempt_at AS "firstAttemptAt",
  k.open_id AS "openId", k.service_id AS "serviceId", k.service_mode_id AS "serviceModeId",
  k.is_test_env AS "isTestEnv"`);

/** The batch, if it is open. */
export async function openBatchById(db: Sql, id: bigint): Promise<BatchRow | undefined> {
  const rows = await db.$queryRaw<BatchRow[]>`
    SELECT ${BATCH_COLUMNS}
    FROM charge_batch b JOIN meter_key k ON k.id = b.key_id
    WHERE b.id = ${id} AND b.status = 'open'`;
  return rows[0];
}

/** The key's newest open batch (a derived partial batch is newer than its parent). */
export async function openBatchOfKey(db: Sql, keyId: number): Promise<BatchRow | undefined> {
  const rows = await db.$queryRaw<BatchRow[]>`
    SELECT ${BATCH_COLUMNS}
    FROM charge_batch b JOIN meter_key k ON k.id = b.key_id
    WHERE b.key_id = ${keyId} AND b.status = 'open'
    ORDER BY b.id DESC LIMIT 1`;
  return rows[0];
}

/**
 * Closes the key's next batch and stores it with its out_trade_no and exact count
 * BEFORE any call is made: the key's events above its batched_seq and up to the
 * ingest horizon (where no write in flight can add one), oldest first, at most
 * maxEvents events and maxCount uses (the first event is always taken). One durable
 * statement: with a lease, only while the run holds it; one index range scan of
 * the key's events; no event row is written. Its first attempt is stamped now: the
 * charger sends a batch right after forming it, and an early stamp only starts the
 * idempotency-window clock sooner (the safe side). No batch when the key has no
 * pending event.
 */
export async function formBatch(
  db: Sql,
  p: FormBatchParams,
  lease?: KeyLease,
): Promise<{ leased: boolean; batch: BatchRow | undefined }> {
  return (await formBatches(db, [{ ...p, lease }]))[0]!;
}

export interface FormBatchParams {
  keyId: number;
  outTradeNo: string;
  maxEvents: number;
  maxCount: number;
  deadlineSec: number;
}

/**
 * formBatch for several distinct keys in one durable statement, each under its own
 * lease (or none); a result per key, in order.
 */
export async function formBatches(
  db: Sql,
  items: readonly (FormBatchParams & { lease?: KeyLease })[],
): Promise<{ leased: boolean; batch: BatchRow | undefined }[]> {
  assertDistinctKeys(items.map((x) => x.keyId));
  const req = JSON.stringify(
    items.map((x, i) => ({
      i,
      key_id: x.keyId,
      token: x.lease ? String(x.lease.token) : null,
      lease_sec: x.lease ? x.lease.leaseMs / 1000 : null,
      out_trade_no: x.outTradeNo,
      max_events: x.maxEvents,
      max_count: x.maxCount,
      deadline_sec: x.deadlineSec,
    })),
  );
  const rows = await db.$queryRaw<(BatchRow & { i: number; leased: boolean })[]>`
    WITH durable AS (${DURABLE_COMMIT}),
    r AS (
      SELECT * FROM jsonb_to_recordset(${req}::jsonb) AS r(i int, key_id int, token bigint, lease_sec float8,
        out_trade_no text, max_events int, max_count int, deadline_sec float8)
    ), locked AS MATERIALIZED (${LEASES_LOCKED_IN_KEY_ORDER}
    ), l AS (
      UPDATE key_lease kl SET until = now() + make_interval(secs => r.lease_sec)
      FROM r WHERE (SELECT count(*) FROM locked) >= 0 AND r.token IS NOT NULL
        AND kl.key_id = r.key_id AND kl.token = r.token
      RETURNING r.i
    ), ok AS (
      SELECT i FROM r WHERE token IS NULL UNION ALL SELECT i FROM l
    ), k AS (
      -- Under a lease, a key's open batch is finished before another is formed (rule 4
      -- of charger.ts), even if one was formed since the run took its lease.
      SELECT r.*, m.batched_seq, (SELECT max_seq FROM ingest_horizon) AS horizon
      FROM r JOIN ok USING (i) JOIN meter_key m ON m.id = r.key_id
      WHERE r.token IS NULL
         OR NOT EXISTS (SELECT 1 FROM charge_batch ob WHERE ob.key_id = r.key_id AND ob.status = 'open')
    ), taken AS (
      SELECT k.key_id, k.out_trade_no, k.deadline_sec, t.*
      FROM k CROSS JOIN LATERAL (
        SELECT min(o.seq) AS first_seq, max(o.seq) AS last_seq, count(*)::int AS events, sum(o.count)::int AS uses
        FROM (SELECT e.seq, e.count, sum(e.count::bigint) OVER (ORDER BY e.seq) AS running,
                     row_number() OVER (ORDER BY e.seq) AS n
              FROM (SELECT seq, count FROM usage_event
                    WHERE key_id = k.key_id AND seq > k.batched_seq AND seq <= k.horizon
                    ORDER BY seq LIMIT k.max_events) e) o
        WHERE o.running <= k.max_count OR o.n = 1
        HAVING count(*) > 0) t
    ), key_update AS (
      UPDATE meter_key m SET batched_seq = taken.last_seq FROM taken WHERE m.id = taken.key_id
    ), b AS (
      INSERT INTO charge_batch (key_id, out_trade_no, count, event_count, first_seq, last_seq, deadline_at,
                                first_attempt_at)
      SELECT key_id, out_trade_no, uses, events, first_seq, last_seq,
             now() + make_interval(secs => deadline_sec), now()
      FROM taken
      RETURNING *
    )
    SELECT r.i, EXISTS (SELECT 1 FROM ok WHERE ok.i = r.i) AS leased, x.*
    FROM (SELECT count(*) FROM durable) d CROSS JOIN r
    LEFT JOIN (SELECT ${BATCH_COLUMNS} FROM b JOIN meter_key k ON k.id = b.key_id) x ON x."keyId" = r.key_id`;
  const byIndex = new Map(rows.map((r) => [r.i, r]));
  return items.map((_, index) => {
    const { i: _i, leased, ...batch } = byIndex.get(index)!;
    return { leased, batch: batch.id === null ? undefined : batch };
  });
}

/** The final outcome of a batch. */
export type Settlement =
  | { status: 'charged' }
  | { status: 'insufficient' }
  | { status: 'dead'; reason: string };

/**
 * Settles a batch (one row; its events' status follows from it), with the attempt
 * that settled it, if any. False when the batch was not in one of `from`.
 */
export async function settleBatch(
  db: Sql,
  a: AttemptRecord | null,
  batchId: bigint,
  s: Settlement,
  /** The statuses it may settle from; a late success also settles a dead or insufficient batch. */
  from: ('open' | 'dead' | 'insufficient')[] = ['open'],
): Promise<boolean> {
  const deadReason = s.status === 'dead' ? s.reason : null;
  const rows = await db.$queryRaw<{ id: bigint }[]>`
    WITH b AS (
      UPDATE charge_batch SET status = ${s.status}::batch_status,
             charged_count = CASE WHEN ${s.status} = 'charged' THEN count ELSE 0 END,
             attempts = attempts + ${a ? 1 : 0},
             last_error_kind = COALESCE(${a?.errorKind ?? null}, last_error_kind),
             last_error_code = COALESCE(${a?.outcome === 'error' ? a.errorCode : null}::int, last_error_code),
             last_error = COALESCE(${a?.description ?? null}, last_error),
             dead_reason = ${deadReason}, updated_at = now(), finished_at = now()
      WHERE id = ${batchId} AND status::text = ANY(${from}::text[])
      RETURNING id, attempts
    ), att AS (
      INSERT INTO call_attempt (batch_id, attempt_no, out_trade_no, count, started_at, duration_ms, http_status,
                                error_code, sub_error_code, description, logid, outcome, error_kind, worker_id)
      SELECT b.id, b.attempts, ${a?.outTradeNo ?? ''}, ${a?.count ?? 0}, ${a?.startedAt ?? new Date()},
             ${a?.durationMs ?? 0}, ${a?.httpStatus ?? null}, ${a?.errorCode ?? null}, ${a?.subErrorCode ?? null},
             ${a?.description ?? null}, ${a?.logid ?? null}, ${a?.outcome ?? 'error'}, ${a?.errorKind ?? null},
             ${a?.workerId ?? null}
      FROM b WHERE ${a !== null}
    )
    SELECT id FROM b`;
  return rows.length > 0;
}

/**
 * Partial policy, final step: the parent batch was charged `charged` of its count
 * (through derived batches); its events count as charged in order while they fit,
 * the rest as overage: the last charged one's seq is stored (charged_through_seq). A parent that went dead with its derived batch becomes
 * partial too when that batch turns out to have been deducted.
 */
export async function settlePartialParent(db: Sql, parentId: bigint, charged: number): Promise<boolean> {
  const n = await db.$executeRaw`
    UPDATE charge_batch b SET status = 'partial', charged_count = ${charged}, overage_count = count - ${charged},
           dead_reason = NULL, updated_at = now(), finished_at = now(),
           charged_through_seq = coalesce((
             SELECT max(r.seq) FROM (
               SELECT e.seq, sum(e.count) OVER (ORDER BY e.seq) AS running FROM usage_event e
               WHERE e.key_id = b.key_id AND e.seq BETWEEN b.first_seq AND b.last_seq) r
             WHERE r.running <= ${charged}), b.first_seq - 1)
    WHERE id = ${parentId} AND status IN ('open', 'dead')`;
  return n > 0;
}

/** Creates (or finds, after a crash) the derived batch n of an open parent for the partial policy. */
export async function createDerivedBatch(
  db: Sql,
  parent: BatchRow,
  n: number,
  count: number,
): Promise<boolean> {
  const outTradeNo = `${parent.outTradeNo}-p${n}`;
  await db.$executeRaw`
    INSERT INTO charge_batch (key_id, out_trade_no, count, event_count, parent_id, deadline_at)
    SELECT ${parent.keyId}, ${outTradeNo}, ${count}, 0, ${parent.id}, ${parent.deadlineAt}
    FROM charge_batch p WHERE p.id = ${parent.id} AND p.status = 'open'
    ON CONFLICT (out_trade_no) DO NOTHING`;
  const rows = await db.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS n FROM charge_batch
    WHERE out_trade_no = ${outTradeNo} AND parent_id = ${parent.id} AND status = 'open'`;
  return rows[0]!.n > 0;
}

/** Number of derived batches a parent already has (their out_trade_no suffixes are 1..n). */
export async function derivedBatchCount(db: Sql, parentId: bigint): Promise<number> {
  const rows = await db.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS n FROM charge_batch WHERE parent_id = ${parentId}`;
  return rows[0]?.n ?? 0;
}
