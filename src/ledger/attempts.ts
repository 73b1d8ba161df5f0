// Call attempts (call_attempt): every DecrUserRemainTimes attempt, successful or
// not, with the platform's logid; and the reports the dashboard reads from them.
import type { Sql } from './db.js';

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
 * Douyin's words as the ledger can store them, on every path alike: no NUL (text
 * cannot hold it), and a lone surrogate as U+FFFD (what a text parameter's UTF-8
 * encoding stores anyway; jsonb would refuse it).
 */
export function storableText(s: string | null): string | null {
  return s === null
    ? null
    : s
        .replaceAll('\0', '')
        .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
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

/** The newest logid of each batch (batches without any logid are absent). */
export async function latestLogids(db: Sql, batchIds: bigint[]): Promise<Map<string, string>> {
  if (batchIds.length === 0) return new Map();
  const rows = await db.$queryRaw<{ batch_id: bigint; logid: string }[]>`
    SELECT DISTINCT ON (batch_id) batch_id, logid FROM call_attempt
    WHERE batch_id = ANY(${batchIds}::bigint[]) AND logid IS NOT NULL
    ORDER BY batch_id, attempt_no DESC`;
  return new Map(rows.map((r) => [String(r.batch_id), r.logid]));
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
