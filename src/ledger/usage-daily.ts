// The daily roll-up (docs/retention.md): every completed UTC day's per-key totals in
// usage_daily, so that what reads days (the dashboard's 30 days, GET /v1/usage once
// the retention dropped the events) reads one row per key and day instead of the
// events. Run by the ledger's daily upkeep before the retention
// (src/metering/ledger-maintenance.ts), so a month is rolled up before it is dropped.
//
// Per key and day:
// - events, accepted: count(*) and sum(count) of usage_event by received_at;
// - deducted: sum(count) of the successful DecrUserRemainTimes calls (call_attempt,
//   outcome 'success') by started_at, each call's key through its batch: counted as
//   src/ledger/service-usage.ts counts it (a partial batch's deduction is its derived
//   batch's call, same key; a batch an operator resolved as charged made no call).
// The statuses (charged, overage, insufficient, dead) are the retention's, written when
// it drops the day's events (src/ledger/prune.ts): never touched here.
//
// A day is final once over: received_at is the inserting transaction's start, so a
// day is rolled up only when it ended at least 5 minutes ago (a transaction started
// before midnight has committed by then). Each day is its own short transaction,
// oldest first, and moves ledger_retention.rolled_through: a run stopped half-way
// resumes, and running a day again writes the same numbers.
import type { ClientBase } from 'pg';
import { listPartitions } from './partitions.js';

/** Days rolled up per run: the first run on an existing ledger covers its history. */
export const DEFAULT_MAX_DAYS = 400;

export interface RollUpReport {
  /** Days rolled up for the first time by this run, oldest first (YYYY-MM-DD). */
  days: string[];
  /** The last day rolled up (after this run), null when none yet. */
  rolledThrough: string | null;
  /** Completed days still to roll up (more than maxDays were due). */
  behind: number;
}

interface Plan {
  /** The first day to roll up, null when nothing is due. */
  first: string | null;
  /** The last completed day (ended at least 5 minutes ago). */
  last: string;
  rolledThrough: string | null;
}

/** Rolls up the completed days not rolled up yet, oldest first, at most `maxDays`. */
export async function rollUpDays(
  c: ClientBase,
  o: { maxDays?: number /** The clock, for tests: default the database's now(). */; now?: Date } = {},
): Promise<RollUpReport> {
  const maxDays = o.maxDays ?? DEFAULT_MAX_DAYS;
  const plan = await planDays(c, o.now ?? null);
  const days: string[] = [];
  let rolledThrough = plan.rolledThrough;
  if (plan.first === null) return { days, rolledThrough, behind: 0 };
  let day = plan.first;
  while (day <= plan.last && days.length < maxDays) {
    await rollUpDay(c, day);
    // Days rolled up before (the last three, again) are not new, nor counted in maxDays.
    if (plan.rolledThrough === null || day > plan.rolledThrough) {
      days.push(day);
      rolledThrough = day;
    }
    day = nextDay(day);
  }
  const behind = day <= plan.last ? daysBetween(day, plan.last) + 1 : 0;
  return { days, rolledThrough, behind };
}

/**
 * Where to start: two days before rolled_through; on a ledger never rolled up, its
 * oldest day (the oldest month still attached, or the oldest call if older). Never
 * before events_since: those days' events are gone, their totals are the retention's.
 */
async function planDays(c: ClientBase, now: Date | null): Promise<Plan> {
  const r = await c.query<{ first: string | null; last: string; rolled: string | null }>(
    `
    WITH r AS (SELECT events_since, rolled_through FROM ledger_retention WHERE id = 1),
    oldest AS (SELECT least($2::timestamptz, (SELECT min(started_at) FROM call_attempt)) AS t),
    start AS (
      -- The last three days rolled up are rolled up again: a row can commit after its
      -- day's roll-up (an attempt recorded late, a PostgreSQL outage); idempotent.
      SELECT coalesce((SELECT rolled_through FROM r) - 2,
                      ((SELECT t FROM oldest) AT TIME ZONE 'UTC')::date) AS d
    )
    SELECT greatest((SELECT d FROM start),
                    ((SELECT events_since FROM r) AT TIME ZONE 'UTC')::date)::text AS first,
           (((coalesce($1::timestamptz, now()) - interval '5 minutes') AT TIME ZONE 'UTC')::date - 1)::text
             AS last,
           (SELECT rolled_through FROM r)::text AS rolled`,
    [now, (await listPartitions(c))[0]?.from ?? null],
  );
  const row = r.rows[0]!;
  return { first: row.first, last: row.last, rolledThrough: row.rolled };
}

// One day ($1) in one statement, so its check of events_since and its reads share a
// snapshot: a day whose events the retention dropped meanwhile is left to the retention
// (read then, it would count nothing and overwrite the retention's numbers). Keys with
// calls and no events that day have a row too (events 0). Statuses are not written.
const ROLL_UP_DAY = `
  WITH b AS (
    SELECT ($1::date)::timestamp AT TIME ZONE 'UTC' AS lo,
           ($1::date + 1)::timestamp AT TIME ZONE 'UTC' AS hi
  ),
  live AS (
    SELECT 1 FROM ledger_retention r, b
    WHERE r.id = 1 AND b.lo >= coalesce(r.events_since, '-infinity')
  ),
  ev AS (
    SELECT e.key_id, count(*) AS events, sum(e.count) AS accepted FROM usage_event e
    WHERE e.received_at >= (SELECT lo FROM b) AND e.received_at < (SELECT hi FROM b)
    GROUP BY 1
  ),
  de AS (
    SELECT x.key_id, sum(a.count) AS deducted FROM call_attempt a
    JOIN charge_batch x ON x.id = a.batch_id
    WHERE a.started_at >= (SELECT lo FROM b) AND a.started_at < (SELECT hi FROM b)
      AND a.outcome = 'success'
    GROUP BY 1
  )
  INSERT INTO usage_daily (key_id, day, events, accepted, deducted)
  SELECT key_id, $1::date, coalesce(ev.events, 0)::int, coalesce(ev.accepted, 0)::int,
         coalesce(de.deducted, 0)::int
  FROM ev FULL JOIN de USING (key_id)
  WHERE EXISTS (SELECT 1 FROM live)
  ON CONFLICT (key_id, day) DO UPDATE
    SET events = EXCLUDED.events, accepted = EXCLUDED.accepted, deducted = EXCLUDED.deducted`;

async function rollUpDay(c: ClientBase, day: string): Promise<void> {
  await c.query('BEGIN');
  try {
    await c.query(ROLL_UP_DAY, [day]);
    await c.query(
      `UPDATE ledger_retention SET rolled_through = greatest(coalesce(rolled_through, $1::date), $1::date)
       WHERE id = 1`,
      [day],
    );
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

const DAY_MS = 86_400_000;

function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10);
}

function daysBetween(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / DAY_MS);
}
