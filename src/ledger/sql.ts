// Every hand-written SQL statement of the ledger's hot paths, in one place.
// Prisma's generated methods serve the rest; these use $queryRaw because bulk
// inserts with unnest() and single-statement state transitions are an order of
// magnitude faster than createMany/updateMany (figures in environment-facts.md).
// Each state transition is ONE statement, so it is atomic without a transaction.
import { Prisma, type PrismaClient } from '../generated/prisma/client.js';

export type Sql = Pick<PrismaClient, '$queryRaw' | '$executeRaw'>;

export interface KeyFields {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  isTestEnv: boolean;
}

/** Inserts missing batching keys and returns the id of every given key. */
export async function upsertKeys(db: Sql, keys: KeyFields[]): Promise<Map<string, number>> {
  const o = keys.map((k) => k.openId);
  const s = keys.map((k) => k.serviceId);
  const m = keys.map((k) => k.serviceModeId);
  const t = keys.map((k) => k.isTestEnv);
  // Sorted, so concurrent inserts take row locks in one order (no deadlocks).
  await db.$executeRaw`
    INSERT INTO meter_key (open_id, service_id, service_mode_id, is_test_env)
    SELECT * FROM unnest(${o}::text[], ${s}::text[], ${m}::text[], ${t}::bool[]) ORDER BY 1, 2, 3, 4
    ON CONFLICT DO NOTHING`;
  const rows = await db.$queryRaw<(KeyFields & { id: number })[]>`
    SELECT k.id, k.open_id AS "openId", k.service_id AS "serviceId", k.service_mode_id AS "serviceModeId",
           k.is_test_env AS "isTestEnv"
    FROM meter_key k
    JOIN unnest(${o}::text[], ${s}::text[], ${m}::text[], ${t}::bool[]) AS i(open_id, service_id, service_mode_id, is_test_env)
      USING (open_id, service_id, service_mode_id, is_test_env)`;
  return new Map(rows.map((r) => [keyString(r), r.id]));
}

export function keyString(k: KeyFields): string {
  // Ids are printable ASCII (the event schema), so a newline cannot be part of one.
  return `${k.openId}\n${k.serviceId}\n${k.serviceModeId}\n${k.isTestEnv}`;
}

export interface EventRow {
  eventId: string;
  keyId: number;
  count: number;
  occurredAt: string | null;
  enqueuedAt: string | null;
  attributes: string | null; // JSON text
}

/**
 * Inserts events, skipping eventIds already in the ledger, and queues the new ones
 * in pending_event (same statement). Returns the key ids of the inserted rows.
 */
export async function insertEvents(db: Sql, rows: EventRow[]): Promise<number[]> {
  const sorted = [...rows].sort((a, b) => (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0));
  const inserted = await db.$queryRaw<{ key_id: number }[]>`
    WITH ins AS (
      INSERT INTO usage_event (event_id, key_id, count, occurred_at, enqueued_at, attributes)
      SELECT * FROM unnest(
        ${sorted.map((r) => r.eventId)}::text[], ${sorted.map((r) => r.keyId)}::int[],
        ${sorted.map((r) => r.count)}::int[], ${sorted.map((r) => r.occurredAt)}::timestamptz[],
        ${sorted.map((r) => r.enqueuedAt)}::timestamptz[], ${sorted.map((r) => r.attributes)}::jsonb[])
      ON CONFLICT (event_id) DO NOTHING
      RETURNING seq, key_id, count, received_at
    ), queued AS (
      INSERT INTO pending_event (seq, key_id, count, received_at) SELECT seq, key_id, count, received_at FROM ins
    )
    SELECT key_id FROM ins`;
  return inserted.map((r) => r.key_id);
}

/** eventIds among these that the ledger already holds. */
export async function existingEventIds(db: Sql, eventIds: string[]): Promise<Set<string>> {
  if (eventIds.length === 0) return new Set();
  const rows = await db.$queryRaw<{ event_id: string }[]>`
    SELECT event_id FROM usage_event WHERE event_id = ANY(${eventIds}::text[])`;
  return new Set(rows.map((r) => r.event_id));
}

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

export const BATCH_COLUMNS = `b.id, b.key_id AS "keyId", b.out_trade_no AS "outTradeNo", b.count,
  b.event_count AS "eventCount", b.parent_id AS "parentId", b.attempts, b.deadline_at AS "deadlineAt",
  b.first_attempt_at AS "firstAttemptAt",
  k.open_id AS "openId", k.service_id AS "serviceId", k.service_mode_id AS "serviceModeId",
  k.is_test_env AS "isTestEnv"`;

/** Whether the key has events in no batch yet. */
export async function keyHasPendingEvents(db: Sql, keyId: number): Promise<boolean> {
  const rows = await db.$queryRaw<{ pending: boolean }[]>`
    SELECT EXISTS (SELECT 1 FROM pending_event WHERE key_id = ${keyId}) AS pending`;
  return rows[0]!.pending;
}

/** The batch, if it is open. */
export async function openBatchById(db: Sql, id: bigint): Promise<BatchRow | undefined> {
  const rows = await db.$queryRaw<BatchRow[]>`
    SELECT ${Prisma.raw(BATCH_COLUMNS)}
    FROM charge_batch b JOIN meter_key k ON k.id = b.key_id
    WHERE b.id = ${id} AND b.status = 'open'`;
  return rows[0];
}

/** The key's newest open batch (a derived partial batch is newer than its parent). */
export async function openBatchOfKey(db: Sql, keyId: number): Promise<BatchRow | undefined> {
  const rows = await db.$queryRaw<BatchRow[]>`
    SELECT ${Prisma.raw(BATCH_COLUMNS)}
    FROM charge_batch b JOIN meter_key k ON k.id = b.key_id
    WHERE b.key_id = ${keyId} AND b.status = 'open'
    ORDER BY b.id DESC LIMIT 1`;
  return rows[0];
}

/**
 * Closes the key's next batch: takes its pending events in arrival order, up to
 * maxEvents and maxCount (the first event is always taken), and stores the batch
 * with its out_trade_no and exact count BEFORE any call is made. Its first attempt
 * is stamped now: the charger sends a batch right after forming it, and an early
 * stamp only starts the idempotency-window clock sooner (the safe side). Returns the new
 * batch, or undefined when the key had no pending event.
 *
 * The batch's count and event_count are summed from the rows this statement
 * actually took off the pending queue (DELETE ... RETURNING): should two runs ever
 * form batches of one key at once, an event lands in exactly one of them and each
 * count is exact, with no row locks taken beforehand. The events' own update
 * changes no indexed column, so it is a HOT update.
 */
export async function formBatch(
  db: Sql,
  p: { keyId: number; outTradeNo: string; maxEvents: number; maxCount: number; deadlineSec: number },
): Promise<BatchRow | undefined> {
  const rows = await db.$queryRaw<BatchRow[]>`
    WITH new_batch AS (
      SELECT nextval(pg_get_serial_sequence('charge_batch', 'id')) AS id
    ), candidates AS (
      SELECT seq, count, sum(count::bigint) OVER (ORDER BY seq) AS running, row_number() OVER (ORDER BY seq) AS n
      FROM (SELECT seq, count FROM pending_event WHERE key_id = ${p.keyId}
            ORDER BY seq LIMIT ${p.maxEvents}) oldest
    ), taken AS (
      DELETE FROM pending_event q USING candidates c
      WHERE q.seq = c.seq AND (c.running <= ${p.maxCount} OR c.n = 1)
      RETURNING q.seq
    ), moved AS (
      UPDATE usage_event e SET status = 'batched', batch_id = (SELECT id FROM new_batch)
      FROM taken t WHERE e.seq = t.seq
      RETURNING e.seq, e.count
    ), batch AS (
      INSERT INTO charge_batch (id, key_id, out_trade_no, count, event_count, first_seq, last_seq, deadline_at,
                                first_attempt_at)
      SELECT (SELECT id FROM new_batch), ${p.keyId}, ${p.outTradeNo}, sum(count), count(*), min(seq), max(seq),
             now() + make_interval(secs => ${p.deadlineSec}), now()
      FROM moved HAVING count(*) > 0
      RETURNING *
    )
    SELECT ${Prisma.raw(BATCH_COLUMNS)} FROM batch b JOIN meter_key k ON k.id = b.key_id`;
  return rows[0];
}

export interface AttemptRecord {
  batchId: bigint;
  outTradeNo: string;
  count: number;
  startedAt: Date;
  durationMs: number;
  httpStatus: number | null;
  errorCode: number | null;
  subErrorCode: number | null;
  description: string | null;
  logid: string | null;
  outcome: 'success' | 'error';
  errorKind: string | null;
  workerId: string;
}

/**
 * Records an attempt that does not settle the batch: a failed one (the batch stays
 * open for a retry), or with `anyStatus` one that came too late to apply (kept in the
 * history all the same). False if the batch is not open and `anyStatus` is not set.
 */
export async function recordAttempt(
  db: Sql,
  a: AttemptRecord,
  o: { anyStatus?: boolean } = {},
): Promise<boolean> {
  const n = await db.$executeRaw`
    WITH b AS (
      UPDATE charge_batch SET attempts = attempts + 1,
             last_error_kind = COALESCE(${a.errorKind}, last_error_kind),
             last_error_code = CASE WHEN ${a.outcome} = 'error' THEN ${a.errorCode}::int ELSE last_error_code END,
             last_error = CASE WHEN ${a.outcome} = 'error' THEN ${a.description} ELSE last_error END,
             updated_at = now()
      WHERE id = ${a.batchId} AND (status = 'open' OR ${o.anyStatus === true})
      RETURNING attempts
    )
    INSERT INTO call_attempt (batch_id, attempt_no, out_trade_no, count, started_at, duration_ms, http_status,
                              error_code, sub_error_code, description, logid, outcome, error_kind, worker_id)
    SELECT ${a.batchId}, b.attempts, ${a.outTradeNo}, ${a.count}, ${a.startedAt}, ${a.durationMs}, ${a.httpStatus},
           ${a.errorCode}, ${a.subErrorCode}, ${a.description}, ${a.logid}, ${a.outcome}, ${a.errorKind}, ${a.workerId}
    FROM b`;
  return n > 0;
}

/** The final outcome of a batch, with its attempt, in one statement. */
export type Settlement =
  | { status: 'charged' }
  | { status: 'insufficient' }
  | { status: 'dead'; reason: string };

export async function settleBatch(
  db: Sql,
  a: AttemptRecord | null,
  batchId: bigint,
  s: Settlement,
  /** The statuses it may settle from; a late success also settles a dead or insufficient batch. */
  from: ('open' | 'dead' | 'insufficient')[] = ['open'],
): Promise<boolean> {
  const deadReason = s.status === 'dead' ? s.reason : null;
  const eventStatus = s.status; // the batch's events take the batch's final status
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
      RETURNING id, attempts, key_id, first_seq, last_seq
    ), att AS (
      INSERT INTO call_attempt (batch_id, attempt_no, out_trade_no, count, started_at, duration_ms, http_status,
                                error_code, sub_error_code, description, logid, outcome, error_kind, worker_id)
      SELECT b.id, b.attempts, ${a?.outTradeNo ?? ''}, ${a?.count ?? 0}, ${a?.startedAt ?? new Date()},
             ${a?.durationMs ?? 0}, ${a?.httpStatus ?? null}, ${a?.errorCode ?? null}, ${a?.subErrorCode ?? null},
             ${a?.description ?? null}, ${a?.logid ?? null}, ${a?.outcome ?? 'error'}, ${a?.errorKind ?? null},
             ${a?.workerId ?? null}
      FROM b WHERE ${a !== null}
    ), ev AS (
      UPDATE usage_event u SET status = ${eventStatus}::event_status
      FROM b WHERE u.key_id = b.key_id AND u.seq BETWEEN b.first_seq AND b.last_seq AND u.batch_id = b.id
    )
    SELECT id FROM b`;
  return rows.length > 0;
}

/**
 * Partial policy, final step: the parent batch was charged `charged` of its count
 * (through derived batches); its events are marked charged in arrival order while
 * they fit, the rest overage. A parent that went dead with its derived batch becomes
 * partial too when that batch turns out to have been deducted.
 */
export async function settlePartialParent(db: Sql, parentId: bigint, charged: number): Promise<boolean> {
  const rows = await db.$queryRaw<{ id: bigint }[]>`
    WITH b AS (
      UPDATE charge_batch SET status = 'partial', charged_count = ${charged}, overage_count = count - ${charged},
             dead_reason = NULL, updated_at = now(), finished_at = now()
      WHERE id = ${parentId} AND status IN ('open', 'dead')
      RETURNING id
    ), ranked AS (
      SELECT u.seq, sum(u.count) OVER (ORDER BY u.seq) AS running
      FROM usage_event u JOIN charge_batch p ON p.id = ${parentId}
      WHERE u.key_id = p.key_id AND u.seq BETWEEN p.first_seq AND p.last_seq AND u.batch_id = p.id
    ), ev AS (
      UPDATE usage_event e
      SET status = CASE WHEN ranked.running <= ${charged} THEN 'charged' ELSE 'overage' END::event_status
      FROM ranked WHERE e.seq = ranked.seq AND EXISTS (SELECT 1 FROM b)
    )
    SELECT id FROM b`;
  return rows.length > 0;
}

/** Creates (or finds, after a crash) the derived batch n of a parent for the partial policy. */
export async function createDerivedBatch(
  db: Sql,
  parent: BatchRow,
  n: number,
  count: number,
): Promise<boolean> {
  await db.$executeRaw`
    INSERT INTO charge_batch (key_id, out_trade_no, count, event_count, parent_id, deadline_at)
    SELECT ${parent.keyId}, ${`${parent.outTradeNo}-p${n}`}, ${count}, 0, ${parent.id}, ${parent.deadlineAt}
    FROM charge_batch p WHERE p.id = ${parent.id} AND p.status = 'open'
    ON CONFLICT (out_trade_no) DO NOTHING`;
  const rows = await db.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS n FROM charge_batch
    WHERE out_trade_no = ${`${parent.outTradeNo}-p${n}`} AND parent_id = ${parent.id} AND status = 'open'`;
  return rows[0]!.n > 0;
}

/** Number of derived batches a parent already has (their out_trade_no suffixes are 1..n). */
export async function derivedBatchCount(db: Sql, parentId: bigint): Promise<number> {
  const rows = await db.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS n FROM charge_batch WHERE parent_id = ${parentId}`;
  return rows[0]?.n ?? 0;
}

/** Keys with events pending (in no batch) longer than `olderThanMs`, or with open batches untouched that long. */
export async function keysNeedingCharge(db: Sql, olderThanMs: number, limit: number): Promise<number[]> {
  const rows = await db.$queryRaw<{ key_id: number }[]>`
    SELECT DISTINCT key_id FROM (
      (SELECT key_id FROM pending_event
       WHERE received_at < now() - make_interval(secs => ${olderThanMs / 1000})
       ORDER BY seq LIMIT ${limit * 20})
      UNION
      (SELECT key_id FROM charge_batch
       WHERE status = 'open' AND updated_at < now() - make_interval(secs => ${olderThanMs / 1000})
       ORDER BY created_at LIMIT ${limit})
    ) k LIMIT ${limit}`;
  return rows.map((r) => r.key_id);
}

/**
 * Events by status, without reading the event table: pending ones are counted in
 * pending_event, the others through their batch (a batch's events share its status;
 * an open batch's are 'batched'; a voided batch's went back to pending). Only a
 * partial batch's events differ (charged or overage), and those few are counted one by one. The state transitions each
 * change a batch and its events in one statement, so the two always agree.
 */
export async function eventsByStatus(db: Sql): Promise<Record<string, number>> {
  const rows = await db.$queryRaw<{ status: string; n: number }[]>`
    SELECT status, sum(n)::int AS n FROM (
      SELECT 'pending' AS status, count(*) AS n FROM pending_event
      UNION ALL
      SELECT CASE WHEN status = 'open' THEN 'batched' ELSE status::text END, sum(event_count)
      FROM charge_batch WHERE status NOT IN ('partial', 'voided') AND event_count > 0 GROUP BY 1
      UNION ALL
      SELECT u.status::text, count(*)
      FROM charge_batch b JOIN usage_event u
        ON u.key_id = b.key_id AND u.seq BETWEEN b.first_seq AND b.last_seq AND u.batch_id = b.id
      WHERE b.status = 'partial' GROUP BY 1
    ) s GROUP BY status`;
  return Object.fromEntries(rows.filter((r) => r.n > 0).map((r) => [r.status, r.n]));
}

/** Age in seconds of the oldest event not yet in a batch, null when none is pending. */
export async function oldestPendingEventAgeSec(db: Sql): Promise<number | null> {
  // pending_event's primary key is seq: the oldest pending row is the first.
  const rows = await db.$queryRaw<{ age: number | null }[]>`
    SELECT extract(epoch FROM now() - received_at)::float8 AS age
    FROM pending_event ORDER BY seq LIMIT 1`;
  return rows[0]?.age ?? null;
}
