// Uses per service over a recent window, in fixed buckets (GET /api/service-usage,
// the dashboard's "Usage by service" card): per service_id, service_mode_id and
// environment, the uses that reached the ledger and the uses Douyin deducted.
//
// Read the way /api/timeseries reads (reports.ts), in one statement that reads no
// table whole:
// - received: sum(count) of usage_event by received_at, found through the BRIN index
//   on received_at (rows arrive in received_at order: only the window's block ranges
//   are read); each event's key by a primary-key probe of meter_key (memoized: one
//   probe per key active in the window);
// - deducted: sum(count) of the successful DecrUserRemainTimes calls (call_attempt,
//   outcome 'success', by its started_at index), each call's batch and key by
//   primary-key probes. A batch has at most one successful call, recorded in the
//   statement that settles it charged; a partial batch's deduction is its derived
//   batch's call, of the same key. A batch resolved as charged by an operator made no
//   call and is not counted (as in /api/timeseries).
// The work grows with the events and calls of the window, not with the tables: about
// 70 ms for an hour of 58,000 events, 0.8-1.1 s for a day of 1.4 million, with 300,000
// keys and 2 million older batches (PostgreSQL 15, 2 cores); the API caches answers.
// Test-mode keys (is_test_env) are not mixed with live ones: they are series of their
// own, marked isTestEnv (Douyin deducts nothing real for them).
// Buckets are aligned to UTC (date_bin from 2000-01-01T00:00Z); the newest is the one
// now falls in (still filling), the window's start is bucketMinutes × (count − 1) before it.
import { Prisma } from '../generated/prisma/client.js';
import type { Sql } from './db.js';

/** The windows and their length in minutes (the month's days: src/ledger/service-usage-month.ts). */
export const USAGE_WINDOWS = { hour: 60, day: 1440, month: 30 * 1440 } as const;
export type UsageWindow = keyof typeof USAGE_WINDOWS;

export interface ServiceUsagePoint {
  /** The bucket's start, ISO (UTC). */
  t: string;
  /** Uses of the events that reached the ledger in the bucket (received_at). */
  received: number;
  /** Uses deducted on Douyin by the successful calls started in the bucket. */
  deducted: number;
}

export interface ServiceUsageSeries {
  serviceId: string;
  serviceModeId: string;
  /** Test-mode keys: their own series, never summed with live ones. */
  isTestEnv: boolean;
  totals: { received: number; deducted: number };
  /** One point per bucket of the window, oldest first, zeros included. */
  points: ServiceUsagePoint[];
}

export interface ServiceUsage {
  bucketMinutes: number;
  /** Start of the first bucket, ISO. */
  from: string;
  /** End of the last bucket (the one now is in), ISO. */
  to: string;
  /**
   * Every service mode with a use received or deducted in the window, by serviceId,
   * then serviceModeId, live before test mode.
   */
  services: ServiceUsageSeries[];
}

/** Buckets are counted from here (UTC), so 15- and 60-minute ones start on the quarter and the hour. */
const ORIGIN = Prisma.sql`TIMESTAMPTZ '2000-01-01 00:00:00+00'`;

interface Row {
  since: Date;
  service_id: string | null;
  service_mode_id: string | null;
  is_test_env: boolean | null;
  t: Date | null;
  received: number;
  deducted: number;
}

/** Uses received and deducted per service mode over the last `windowMinutes`, in `bucketMinutes` buckets. */
export async function serviceUsage(
  db: Sql,
  windowMinutes: number,
  bucketMinutes: number,
): Promise<ServiceUsage> {
  if (windowMinutes % bucketMinutes !== 0) throw new Error('bucketMinutes must divide windowMinutes');
  const buckets = windowMinutes / bucketMinutes;
  // The window's bounds are InitPlan parameters, unknown when the statement is planned:
  // with both bounds the planner assumes a narrow range (0.5 % of a table) rather
  // than a third of it, which keeps its row estimates, and JIT compilation, small.
  // Each LATERAL ... LIMIT 1 is a primary-key probe per row of the window (memoized
  // per key), so charge_batch and meter_key are never read whole, whatever the estimates.
  const rows = await db.$queryRaw<Row[]>`
    WITH w AS (
      SELECT date_bin(make_interval(mins => ${bucketMinutes}), now(), ${ORIGIN}) AS newest
    ),
    win AS (
      SELECT newest - make_interval(mins => ${bucketMinutes * (buckets - 1)}) AS since,
             newest + make_interval(mins => ${bucketMinutes}) AS until
      FROM w
    ),
    received AS (
      SELECT k.service_id, k.service_mode_id, k.is_test_env,
             date_bin(make_interval(mins => ${bucketMinutes}), e.received_at, ${ORIGIN}) AS t,
             sum(e.count) AS received
      FROM usage_event e
      CROSS JOIN LATERAL (
        SELECT k.service_id, k.service_mode_id, k.is_test_env FROM meter_key k WHERE k.id = e.key_id LIMIT 1
      ) k
      WHERE e.received_at >= (SELECT since FROM win) AND e.received_at < (SELECT until FROM win)
      GROUP BY 1, 2, 3, 4
    ),
    deducted AS (
      SELECT k.service_id, k.service_mode_id, k.is_test_env,
             date_bin(make_interval(mins => ${bucketMinutes}), a.started_at, ${ORIGIN}) AS t,
             sum(a.count) AS deducted
      FROM call_attempt a
      CROSS JOIN LATERAL (SELECT b.key_id FROM charge_batch b WHERE b.id = a.batch_id LIMIT 1) b
      CROSS JOIN LATERAL (
        SELECT k.service_id, k.service_mode_id, k.is_test_env FROM meter_key k WHERE k.id = b.key_id LIMIT 1
      ) k
      WHERE a.started_at >= (SELECT since FROM win) AND a.started_at < (SELECT until FROM win)
        AND a.outcome = 'success'
      GROUP BY 1, 2, 3, 4
    ),
    cells AS (
      SELECT * FROM received FULL JOIN deducted USING (service_id, service_mode_id, is_test_env, t)
    )
    -- One row even when nothing happened: the window's start is the database's.
    SELECT win.since, c.service_id, c.service_mode_id, c.is_test_env, c.t,
           coalesce(c.received, 0)::float8 AS received, coalesce(c.deducted, 0)::float8 AS deducted
    FROM win LEFT JOIN cells c ON true
    ORDER BY c.service_id, c.service_mode_id, c.is_test_env, c.t`;

  const bucketMs = bucketMinutes * 60_000;
  const since = rows[0]!.since.getTime();
  const series: ServiceUsageSeries[] = [];
  let current: ServiceUsageSeries | undefined;
  for (const r of rows) {
    if (r.service_id === null || r.service_mode_id === null || r.is_test_env === null || r.t === null)
      continue;
    // Within the window: the statement keeps what falls in [since, until).
    const i = (r.t.getTime() - since) / bucketMs;
    if (
      !current ||
      current.serviceId !== r.service_id ||
      current.serviceModeId !== r.service_mode_id ||
      current.isTestEnv !== r.is_test_env
    ) {
      current = {
        serviceId: r.service_id,
        serviceModeId: r.service_mode_id,
        isTestEnv: r.is_test_env,
        totals: { received: 0, deducted: 0 },
        points: Array.from({ length: buckets }, (_, j) => ({
          t: new Date(since + j * bucketMs).toISOString(),
          received: 0,
          deducted: 0,
        })),
      };
      series.push(current);
    }
    const p = current.points[i]!;
    p.received += r.received;
    p.deducted += r.deducted;
    current.totals.received += r.received;
    current.totals.deducted += r.deducted;
  }
  return {
    bucketMinutes,
    from: new Date(since).toISOString(),
    to: new Date(since + buckets * bucketMs).toISOString(),
    services: series,
  };
}
