// Every hand-written SQL statement of the server, in one place. The dashboard's
// other reads use the generated Prisma client. These are raw because they need
// generate_series, percentiles, DISTINCT ON or an index trick Prisma cannot express.
import type { PrismaClient } from '../generated/prisma/client.js';

type Sql = Pick<PrismaClient, '$queryRaw'>;

/** `select 1`: the database answers. */
export async function selectOne(db: Sql): Promise<void> {
  await db.$queryRaw`SELECT 1`;
}

/**
 * Names of the migrations recorded as applied (as src/db/migrate.ts and Prisma record
 * them), or null while the table does not exist. Over the pool: /readyz opens no
 * connection of its own.
 */
export async function appliedMigrations(db: Sql): Promise<Set<string> | null> {
  const [table] = await db.$queryRaw<{ t: string | null }[]>`
    SELECT to_regclass('"_prisma_migrations"')::text AS t`;
  if (!table?.t) return null;
  const rows = await db.$queryRaw<{ migration_name: string }[]>`
    SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`;
  return new Set(rows.map((r) => r.migration_name));
}

/** The newest logid of each batch (batches without any logid are absent). */
export async function latestLogids(db: Sql, batchIds: bigint[]): Promise<Map<string, string>> {
  if (batchIds.length === 0) return new Map();
  const rows = await db.$queryRaw<{ batch_id: bigint; logid: string }[]>`
    SELECT DISTINCT ON (batch_id) batch_id, logid FROM call_attempt
    WHERE batch_id = ANY(${batchIds}::bigint[]) AND logid IS NOT NULL
    ORDER BY batch_id, attempt_no DESC`;
  return new Map(rows.map((r) => [String(r.batch_id), r.logid]));
}

export interface MinutePoint {
  /** Start of the minute, ISO. */
  t: string;
  /** Events that reached the ledger in this minute. */
  eventsIn: number;
  /** Uses deducted on Douyin (sum of the counts of the successful calls). */
  deductions: number;
  /** DecrUserRemainTimes attempts that failed. */
  errors: number;
}

/**
 * Per-minute events in, deductions and call errors over the last `minutes` minutes
 * (the current minute included), oldest first, one point per minute.
 *
 * usage_event has no index on received_at, but seq grows with it (both are set at
 * insert), so the window is found by walking the primary key backwards from the
 * newest row to the first one older than the window: cost in proportion to the
 * window's rows, not the table. Deductions come from the successful call attempts
 * (indexed by started_at): a batch is settled `charged` in the same statement that
 * records its one successful attempt, so the two are the same numbers without a
 * scan of charge_batch by finished_at, which has no index.
 */
export async function timeseries(db: Sql, minutes: number): Promise<MinutePoint[]> {
  const rows = await db.$queryRaw<{ t: Date; events_in: number; deductions: number; errors: number }[]>`
    WITH w AS (SELECT date_trunc('minute', now()) - make_interval(mins => ${minutes - 1}) AS since),
    m AS (
      SELECT generate_series((SELECT since FROM w), date_trunc('minute', now()), interval '1 minute') AS t
    ),
    ev AS (
      SELECT date_trunc('minute', received_at) AS t, count(*)::int AS n FROM usage_event
      WHERE seq > coalesce((SELECT seq FROM usage_event WHERE received_at < (SELECT since FROM w)
                            ORDER BY seq DESC LIMIT 1), 0)
        AND received_at >= (SELECT since FROM w)
      GROUP BY 1
    ),
    ca AS (
      SELECT date_trunc('minute', started_at) AS t,
             coalesce(sum(count) FILTER (WHERE outcome = 'success'), 0)::int AS deductions,
             count(*) FILTER (WHERE outcome = 'error')::int AS errors
      FROM call_attempt WHERE started_at >= (SELECT since FROM w)
      GROUP BY 1
    )
    SELECT m.t, coalesce(ev.n, 0) AS events_in, coalesce(ca.deductions, 0) AS deductions,
           coalesce(ca.errors, 0) AS errors
    FROM m LEFT JOIN ev USING (t) LEFT JOIN ca USING (t)
    ORDER BY m.t`;
  return rows.map((r) => ({
    t: r.t.toISOString(),
    eventsIn: r.events_in,
    deductions: r.deductions,
    errors: r.errors,
  }));
}

export interface CallStats {
  attempts: number;
  errors: number;
  p50Ms: number | null;
  p95Ms: number | null;
  errorsByKind: Record<string, number>;
}

/** DecrUserRemainTimes calls over the last `windowSec` seconds. */
export async function callStats(db: Sql, windowSec: number): Promise<CallStats> {
  const [totals, kinds] = await Promise.all([
    db.$queryRaw<{ attempts: number; errors: number; p50: number | null; p95: number | null }[]>`
      SELECT count(*)::int AS attempts, count(*) FILTER (WHERE outcome = 'error')::int AS errors,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms)::float8 AS p50,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)::float8 AS p95
      FROM call_attempt WHERE started_at >= now() - make_interval(secs => ${windowSec})`,
    db.$queryRaw<{ kind: string; n: number }[]>`
      SELECT coalesce(error_kind, 'unknown') AS kind, count(*)::int AS n FROM call_attempt
      WHERE started_at >= now() - make_interval(secs => ${windowSec}) AND outcome = 'error'
      GROUP BY 1 ORDER BY 2 DESC`,
  ]);
  const t = totals[0];
  return {
    attempts: t?.attempts ?? 0,
    errors: t?.errors ?? 0,
    p50Ms: t?.p50 ?? null,
    p95Ms: t?.p95 ?? null,
    errorsByKind: Object.fromEntries(kinds.map((k) => [k.kind, k.n])),
  };
}

export interface RecentCallError {
  id: string;
  batchId: string;
  attemptNo: number;
  startedAt: string;
  durationMs: number;
  httpStatus: number | null;
  errorCode: number | null;
  errorKind: string | null;
  description: string | null;
  logid: string | null;
}

/** The newest failed attempts within the last `windowSec` seconds. */
export async function recentCallErrors(
  db: Sql,
  windowSec: number,
  limit: number,
): Promise<RecentCallError[]> {
  const rows = await db.$queryRaw<
    {
      id: bigint;
      batch_id: bigint;
      attempt_no: number;
      started_at: Date;
      duration_ms: number;
      http_status: number | null;
      error_code: number | null;
      error_kind: string | null;
      description: string | null;
      logid: string | null;
    }[]
  >`
    SELECT id, batch_id, attempt_no, started_at, duration_ms, http_status, error_code, error_kind, description, logid
    FROM call_attempt
    WHERE started_at >= now() - make_interval(secs => ${windowSec}) AND outcome = 'error'
    ORDER BY started_at DESC LIMIT ${limit}`;
  return rows.map((r) => ({
    id: String(r.id),
    batchId: String(r.batch_id),
    attemptNo: r.attempt_no,
    startedAt: r.started_at.toISOString(),
    durationMs: r.duration_ms,
    httpStatus: r.http_status,
    errorCode: r.error_code,
    errorKind: r.error_kind,
    description: r.description,
    logid: r.logid,
  }));
}
