// The last 30 days of uses per service, one bucket per UTC day (GET /api/service-usage
// ?window=month, the dashboard's "30 days"): the same answer as serviceUsage
// (src/ledger/service-usage.ts), received and deducted per service mode and day.
//
// The days rolled up already (up to ledger_retention.rolled_through, see
// src/ledger/usage-daily.ts) are read from usage_daily, 30 rows per key at most,
// grouped by the key's service_id, service_mode_id and is_test_env through a
// primary-key join on meter_key. The days after it (today, still filling, and
// yesterday until the daily upkeep rolls it up) are read from the events and calls by
// serviceUsage itself, in day buckets: a day is read from one of the two, never both.
import type { Sql } from './db.js';
import { type ServiceUsage, type ServiceUsageSeries, serviceUsage } from './service-usage.js';

/** Days in the window, today included. */
export const MONTH_DAYS = 30;
const DAY_MIN = 1440;
const DAY_MS = 86_400_000;

interface DailyRow {
  today: Date;
  rolled: Date | null;
  service_id: string | null;
  service_mode_id: string | null;
  is_test_env: boolean | null;
  day: Date | null;
  received: number;
  deducted: number;
}

/** Uses received and deducted per service mode per UTC day over the last 30 days. */
export async function serviceUsageMonth(db: Sql): Promise<ServiceUsage> {
  const rows = await db.$queryRaw<DailyRow[]>`
    WITH w AS (
      SELECT (now() AT TIME ZONE 'UTC')::date AS today,
             (SELECT rolled_through FROM ledger_retention WHERE id = 1) AS rolled
    ),
    cells AS (
      SELECT k.service_id, k.service_mode_id, k.is_test_env, d.day,
             sum(d.accepted) AS received, sum(d.deducted) AS deducted
      FROM usage_daily d JOIN meter_key k ON k.id = d.key_id
      WHERE d.day > (SELECT today FROM w) - ${MONTH_DAYS}::int AND d.day <= (SELECT rolled FROM w)
        AND d.day < (SELECT today FROM w)
      GROUP BY 1, 2, 3, 4
    )
    -- One row even when nothing was rolled up: the window is the database's.
    SELECT w.today::timestamp AT TIME ZONE 'UTC' AS today, w.rolled::timestamp AT TIME ZONE 'UTC' AS rolled,
           c.service_id, c.service_mode_id, c.is_test_env, c.day::timestamp AT TIME ZONE 'UTC' AS day,
           coalesce(c.received, 0)::float8 AS received, coalesce(c.deducted, 0)::float8 AS deducted
    FROM w LEFT JOIN cells c ON true`;
  const today = rows[0]!.today.getTime();
  const since = today - (MONTH_DAYS - 1) * DAY_MS;
  // The days after the last one rolled up, from the events (today at least).
  const rolled = rows[0]!.rolled?.getTime() ?? -Infinity;
  const fromEvents = Math.max(since, Math.min(today, rolled + DAY_MS));
  const recent = await serviceUsage(db, ((today - fromEvents) / DAY_MS + 1) * DAY_MIN, DAY_MIN);

  const series = new Map<string, ServiceUsageSeries>();
  const add = (
    s: { serviceId: string; serviceModeId: string; isTestEnv: boolean },
    t: number,
    r: number,
    d: number,
  ) => {
    const i = (t - since) / DAY_MS;
    if (!(i >= 0 && i < MONTH_DAYS)) return; // a midnight between the two reads
    const id = JSON.stringify([s.serviceId, s.serviceModeId, s.isTestEnv]);
    let x = series.get(id);
    if (!x) {
      x = { ...s, totals: { received: 0, deducted: 0 }, points: emptyPoints(since) };
      series.set(id, x);
    }
    x.points[i]!.received += r;
    x.points[i]!.deducted += d;
    x.totals.received += r;
    x.totals.deducted += d;
  };
  for (const r of rows) {
    if (r.service_id === null || r.service_mode_id === null || r.is_test_env === null || r.day === null)
      continue;
    const s = { serviceId: r.service_id, serviceModeId: r.service_mode_id, isTestEnv: r.is_test_env };
    add(s, r.day.getTime(), r.received, r.deducted);
  }
  for (const s of recent.services)
    for (const p of s.points) if (p.received || p.deducted) add(s, Date.parse(p.t), p.received, p.deducted);
  return {
    bucketMinutes: DAY_MIN,
    from: new Date(since).toISOString(),
    to: new Date(since + MONTH_DAYS * DAY_MS).toISOString(),
    services: [...series.values()].filter((x) => x.totals.received > 0 || x.totals.deducted > 0).sort(byMode),
  };
}

function emptyPoints(since: number) {
  return Array.from({ length: MONTH_DAYS }, (_, j) => ({
    t: new Date(since + j * DAY_MS).toISOString(),
    received: 0,
    deducted: 0,
  }));
}

/** As serviceUsage orders its series: serviceId, serviceModeId, live before test. */
function byMode(a: ServiceUsageSeries, b: ServiceUsageSeries): number {
  return (
    cmp(a.serviceId, b.serviceId) ||
    cmp(a.serviceModeId, b.serviceModeId) ||
    Number(a.isTestEnv) - Number(b.isTestEnv)
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
