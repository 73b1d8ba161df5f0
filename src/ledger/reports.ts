// What the dashboard, the CLI's status and /metrics report about the ledger, read
// from the keys' counters and the batches, not from the event table, wherever
// that can be done.
import { Prisma } from '../generated/prisma/client.js';
import type { Sql } from './db.js';

/** Events and their uses by status. */
export type EventCounts = Record<string, { events: number; uses: number }>;

/**
 * Events by status, for the whole ledger or some keys: the ones in batches counted
 * from the batches (a batch's events share its status; an open batch's are
 * 'batched'), pending ones by an index range scan of each key's events after its
 * batched_seq. Only a partial batch's events differ (charged or overage), and
 * those few are read through usage_event_status.
 */
export async function eventsByStatus(db: Sql, keyIds?: number[]): Promise<EventCounts> {
  const keyFilter = (column: string) =>
    keyIds === undefined ? Prisma.empty : Prisma.sql`AND ${Prisma.raw(column)} = ANY(${keyIds}::int[])`;
  const rows = await db.$queryRaw<{ status: string; events: number; uses: number }[]>`
    SELECT status, sum(events)::int AS events, sum(uses)::float8 AS uses FROM (
      SELECT 'pending' AS status, sum(p.events) AS events, sum(p.uses) AS uses
      FROM meter_key k CROSS JOIN LATERAL (
        SELECT count(*) AS events, sum(e.count) AS uses FROM usage_event e
        WHERE e.key_id = k.id AND e.seq > k.batched_seq) p
      WHERE true ${keyFilter('k.id')}
      UNION ALL
      SELECT CASE WHEN status = 'open' THEN 'batched' ELSE status::text END, sum(event_count), sum(count)
      FROM charge_batch
      WHERE parent_id IS NULL AND status NOT IN ('partial', 'voided') AND event_count > 0 ${keyFilter('key_id')}
      GROUP BY 1
      UNION ALL
      SELECT e.status, count(*), sum(e.count)
      FROM charge_batch b JOIN usage_event_status e
        ON e.key_id = b.key_id AND e.seq BETWEEN b.first_seq AND b.last_seq
      WHERE b.status = 'partial' ${keyFilter('b.key_id')} GROUP BY 1
    ) s WHERE events > 0 GROUP BY status`;
  return Object.fromEntries(rows.map((r) => [r.status, { events: r.events, uses: r.uses }]));
}

/**
 * Uses of the key that Douyin deducted, or may have, in batches settled after
 * `since`: charged ones (a partial parent is not one; its derived batch is) and
 * dead ones (their outcome is unknown: counted, so a balance errs low).
 */
export async function chargedUsesSince(db: Sql, keyId: number, since: Date): Promise<number> {
  const rows = await db.$queryRaw<{ uses: number }[]>`
    SELECT coalesce(sum(count), 0)::int AS uses FROM charge_batch
    WHERE key_id = ${keyId} AND status IN ('charged', 'dead') AND finished_at > ${since}`;
  return rows[0]!.uses;
}

const DAY_MS = 86_400_000;

export interface UsageBucket {
  /** The bucket's start (UTC). */
  start: Date;
  keyId: number;
  /** Uses of the events that reached the ledger in the bucket. */
  accepted: number;
  charged: number;
  overage: number;
  insufficient: number;
  dead: number;
  /** Not charged yet (pending, or in a batch not settled yet). */
  waiting: number;
}

/**
 * The keys' uses per hour or day (UTC) of arrival, by what became of them, oldest
 * first. Days whose events the retention dropped (before ledger_retention's
 * events_since) come from their totals in usage_daily, per day only: a day is
 * read from one of the two, never both (src/ledger/prune.ts). Only the rows the
 * retention wrote (statuses known) are read: a rolled-up row of a key with calls but
 * no events that day has none, and was never a bucket. Days are whole UTC days:
 * `from` and `to` are widened to them.
 */
export async function usageBuckets(
  db: Sql,
  keyIds: number[],
  from: Date,
  to: Date,
  granularity: 'hour' | 'day',
): Promise<UsageBucket[]> {
  if (keyIds.length === 0) return [];
  // Whole UTC days, from the events or from usage_daily alike: a day reads the same
  // before and after the retention drops its events.
  const [lo, hi] =
    granularity === 'day'
      ? [
          new Date(Math.floor(from.getTime() / DAY_MS) * DAY_MS),
          new Date(Math.ceil(to.getTime() / DAY_MS) * DAY_MS),
        ]
      : [from, to];
  return db.$queryRaw<UsageBucket[]>`
    WITH r AS (SELECT events_since AS since FROM ledger_retention WHERE id = 1)
    SELECT date_trunc(${granularity}, e.received_at, 'UTC') AS start, e.key_id AS "keyId",
           sum(e.count)::int AS accepted,
           coalesce(sum(e.count) FILTER (WHERE e.status = 'charged'), 0)::int AS charged,
           coalesce(sum(e.count) FILTER (WHERE e.status = 'overage'), 0)::int AS overage,
           coalesce(sum(e.count) FILTER (WHERE e.status = 'insufficient'), 0)::int AS insufficient,
           coalesce(sum(e.count) FILTER (WHERE e.status = 'dead'), 0)::int AS dead,
           coalesce(sum(e.count) FILTER (WHERE e.status IN ('pending', 'batched')), 0)::int AS waiting
    FROM usage_event_status e
    WHERE e.key_id = ANY(${keyIds}::int[]) AND e.received_at >= ${lo} AND e.received_at < ${hi}
      AND e.received_at >= coalesce((SELECT since FROM r), '-infinity')
    GROUP BY 1, 2
    UNION ALL
    SELECT (d.day::timestamp AT TIME ZONE 'UTC') AS start, d.key_id AS "keyId", d.accepted, d.charged,
           d.overage, d.insufficient, d.dead, 0 AS waiting
    FROM usage_daily d
    WHERE ${granularity}::text = 'day' AND d.key_id = ANY(${keyIds}::int[]) AND d.charged IS NOT NULL
      AND (d.day::timestamp AT TIME ZONE 'UTC') >= ${lo}
      AND (d.day::timestamp AT TIME ZONE 'UTC') < ${hi}
      AND (d.day::timestamp AT TIME ZONE 'UTC') < coalesce((SELECT since FROM r), '-infinity')
    ORDER BY 1, 2`;
}

/** Age in seconds of the oldest event not yet in a batch, null when none is pending. */
export async function oldestPendingEventAgeSec(db: Sql): Promise<number | null> {
  const rows = await db.$queryRaw<{ age: number | null }[]>`
    SELECT extract(epoch FROM now() - min(first.received_at))::float8 AS age
    FROM meter_key k CROSS JOIN LATERAL (
      SELECT received_at FROM usage_event e WHERE e.key_id = k.id AND e.seq > k.batched_seq
      ORDER BY e.seq LIMIT 1) first`;
  return rows[0]?.age ?? null;
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
 * (the current minute included), oldest first, one point per minute. Events in are
 * found by received_at (a BRIN index); deductions come from the successful call
 * attempts (indexed by started_at): a batch is settled `charged` in the same
 * statement that records its one successful attempt.
 */
export async function timeseries(db: Sql, minutes: number): Promise<MinutePoint[]> {
  const rows = await db.$queryRaw<{ t: Date; events_in: number; deductions: number; errors: number }[]>`
    WITH w AS (SELECT date_trunc('minute', now()) - make_interval(mins => ${minutes - 1}) AS since),
    m AS (
      SELECT generate_series((SELECT since FROM w), date_trunc('minute', now()), interval '1 minute') AS t
    ),
    ev AS (
      SELECT date_trunc('minute', received_at) AS t, count(*)::int AS n FROM usage_event
      WHERE received_at >= (SELECT since FROM w)
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
