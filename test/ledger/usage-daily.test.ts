// The daily roll-up (src/ledger/usage-daily.ts) on a real PostgreSQL: each completed
// UTC day's per-key events, uses accepted and uses deducted in usage_daily, equal to
// counting the events and the successful calls one by one; idempotent; today and a
// day that ended under 5 minutes ago wait; a run resumes from rolled_through; the
// retention afterwards keeps deducted, fills the statuses, and GET /v1/usage's days
// (usageBuckets) read the same before and after it.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { formBatch, settleBatch } from '../../src/ledger/batches.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { pruneLedger } from '../../src/ledger/prune.js';
import { usageBuckets } from '../../src/ledger/reports.js';
import { rollUpDays } from '../../src/ledger/usage-daily.js';
import { addEvents, successAttempt } from '../support/ledger.js';
import { createTestDatabase } from '../support/services.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** Midnight (UTC) `ago` days before today. */
const dayStart = (ago: number) => new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS - ago * DAY_MS);
const dayOf = (d: Date) => d.toISOString().slice(0, 10);
const monthStart = (monthsAgo: number) => {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - monthsAgo, 1));
};
const at = (d: Date, hours: number) => new Date(d.getTime() + hours * HOUR_MS);

let url: string;
let db: PrismaClient;
let c: pg.Client;
let a: number;
let b: number;
let n = 0;

/** Events of these counts received at `when` (its month's partition made first). */
async function arrived(keyId: number, counts: number[], when: Date): Promise<void> {
  await c.query('SELECT usage_event_partition_for($1::date)', [dayOf(when)]);
  const ids = await addEvents(db, keyId, counts, 'ud');
  await c.query('UPDATE usage_event SET received_at = $2 WHERE event_id = ANY($1::text[])', [ids, when]);
}

/**
 * The key's pending events in a batch, charged by a successful call started at `callAt`
 * after a failed one (which deducts nothing), as the charger records them.
 */
async function chargedAt(keyId: number, callAt: Date): Promise<number> {
  const batch = (
    await formBatch(db, { keyId, outTradeNo: `UD-${++n}`, maxEvents: 1_000, maxCount: 1e6, deadlineSec: 60 })
  ).batch!;
  await db.callAttempt.create({
    data: {
      batchId: batch.id,
      attemptNo: 1,
      outTradeNo: batch.outTradeNo,
      count: batch.count,
      startedAt: at(callAt, -0.5),
      durationMs: 10,
      outcome: 'error',
      errorKind: 'transient',
      httpStatus: 503,
    },
  });
  await settleBatch(db, successAttempt(batch, { startedAt: callAt }), batch.id, { status: 'charged' });
  await c.query('UPDATE charge_batch SET created_at = $2, updated_at = $2, finished_at = $2 WHERE id = $1', [
    batch.id,
    callAt,
  ]);
  return batch.count;
}

/** usage_daily's rolled-up numbers, by key and day. */
async function daily(): Promise<
  { key_id: number; day: string; events: number; accepted: number; deducted: number }[]
> {
  const r = await c.query(
    'SELECT key_id, day::text, events, accepted, deducted FROM usage_daily ORDER BY day, key_id',
  );
  return r.rows;
}

/** The same numbers counted from the events and the successful calls, one by one, for the days through `last`. */
async function byHand(last: string) {
  const r = await c.query(
    `WITH ev AS (
       SELECT key_id, (received_at AT TIME ZONE 'UTC')::date AS day, count(*)::int AS events,
              sum(count)::int AS accepted FROM usage_event GROUP BY 1, 2),
     de AS (
       SELECT x.key_id, (a.started_at AT TIME ZONE 'UTC')::date AS day, sum(a.count)::int AS deducted
       FROM call_attempt a JOIN charge_batch x ON x.id = a.batch_id WHERE a.outcome = 'success' GROUP BY 1, 2)
     SELECT key_id, day::text, coalesce(events, 0) AS events, coalesce(accepted, 0) AS accepted,
            coalesce(deducted, 0) AS deducted
     FROM ev FULL JOIN de USING (key_id, day) WHERE day <= $1::date ORDER BY day, key_id`,
    [last],
  );
  return r.rows;
}

const rolledThrough = async () =>
  (await c.query<{ d: string | null }>('SELECT rolled_through::text AS d FROM ledger_retention')).rows[0]!.d;

// An old day (three months back, past a 35-day retention): a's 1 + 2 charged the same
// day; b's 4 received in its last second, charged just after midnight (deducted the
// next day). Two and one days ago: a's 5, then 7 with a call of a yesterday; today: 9.
const old = at(monthStart(3), 5 * 24);
beforeAll(async () => {
  url = await createTestDatabase('usage_daily');
  db = createPrisma(url);
  c = new pg.Client({ connectionString: url });
  await c.connect();
  [a, b] = [
    ...(
      await upsertKeys(db, [
        { openId: 'ud-a', serviceId: 's', serviceModeId: 'm', isTestEnv: false },
        { openId: 'ud-b', serviceId: 's', serviceModeId: 'm', isTestEnv: false },
      ])
    ).values(),
  ] as [number, number];
  await arrived(a, [1, 2], at(old, 3));
  await chargedAt(a, at(old, 4));
  await arrived(b, [4], new Date(old.getTime() + DAY_MS - 1_000));
  await chargedAt(b, at(old, 24.01));
  await arrived(a, [5], at(dayStart(2), 10));
  await arrived(a, [7], at(dayStart(1), 1));
  await chargedAt(a, at(dayStart(1), 2)); // the 5 and the 7
  await arrived(a, [9], at(dayStart(0), 0));
});
afterAll(async () => {
  await c?.end();
  await db?.$disconnect();
});

describe('daily roll-up', () => {
  it('rolls up at most maxDays per run, oldest first, and resumes from rolled_through', async () => {
    const first = await rollUpDays(c, { maxDays: 10 });
    // A ledger never rolled up starts at its oldest month.
    expect(first.days[0]).toBe(dayOf(monthStart(3)));
    expect(first.days).toHaveLength(10);
    expect(first.behind).toBeGreaterThan(0);
    expect(await rolledThrough()).toBe(first.rolledThrough);
    expect(await daily()).toEqual([
      { key_id: a, day: dayOf(old), events: 2, accepted: 3, deducted: 3 },
      { key_id: b, day: dayOf(old), events: 1, accepted: 4, deducted: 0 },
      { key_id: b, day: dayOf(at(old, 24)), events: 0, accepted: 0, deducted: 4 },
    ]);
    const second = await rollUpDays(c, { maxDays: 3 });
    expect(second.days[0]).toBe(dayOf(at(old, 10 * 24 - 5 * 24)));
    expect(second.days).toHaveLength(3);
  });

  it('waits for a day until 5 minutes after its end, and never rolls up today', async () => {
    // At 00:04 today (UTC) yesterday is not final yet; at 00:05 it is.
    const early = await rollUpDays(c, { now: at(dayStart(0), 4 / 60) });
    expect(early.rolledThrough).toBe(dayOf(dayStart(2)));
    expect(early.behind).toBe(0);
    expect((await daily()).filter((r) => r.day >= dayOf(dayStart(1)))).toEqual([]);
    const onTime = await rollUpDays(c, { now: at(dayStart(0), 5 / 60) });
    expect(onTime.days).toEqual([dayOf(dayStart(1))]);
    // Now (later today): nothing more; today's 9 stays in the events only.
    expect((await rollUpDays(c)).days).toEqual([]);
    expect(await rolledThrough()).toBe(dayOf(dayStart(1)));
    const last = dayOf(dayStart(1));
    expect(await daily()).toEqual(await byHand(last));
    expect((await daily()).filter((r) => r.day >= dayOf(dayStart(2)))).toEqual([
      { key_id: a, day: dayOf(dayStart(2)), events: 1, accepted: 5, deducted: 0 },
      { key_id: a, day: dayOf(dayStart(1)), events: 1, accepted: 7, deducted: 12 },
    ]);
  });

  it('is idempotent: days rolled up again read the same', async () => {
    const before = await daily();
    await c.query('UPDATE ledger_retention SET rolled_through = NULL');
    const again = await rollUpDays(c);
    expect(again.rolledThrough).toBe(dayOf(dayStart(1)));
    expect(await daily()).toEqual(before);
  });

  it('the retention afterwards keeps deducted and fills the statuses; GET /v1/usage reads the same days', async () => {
    const range = [monthStart(5), at(dayStart(0), 48)] as const;
    const before = await usageBuckets(db, [a, b], ...range, 'day');
    const r = await pruneLedger(c, { retentionDays: 35, actor: 'test' });
    expect(r.months.filter((m) => m.action === 'dropped').map((m) => m.from)).toContainEqual(monthStart(3));
    const after = await usageBuckets(db, [a, b], ...range, 'day');
    expect(after).toEqual(before);
    const rows = await c.query(
      `SELECT key_id, day::text, events, accepted, deducted, charged, overage, insufficient, dead
       FROM usage_daily WHERE day < $1::date ORDER BY day, key_id`,
      [dayOf(monthStart(2))],
    );
    expect(rows.rows).toEqual([
      {
        key_id: a,
        day: dayOf(old),
        ...{ events: 2, accepted: 3, deducted: 3 },
        ...{ charged: 3, overage: 0, insufficient: 0, dead: 0 },
      },
      {
        key_id: b,
        day: dayOf(old),
        ...{ events: 1, accepted: 4, deducted: 0 },
        ...{ charged: 4, overage: 0, insufficient: 0, dead: 0 },
      },
      // Calls but no events that day: no statuses, and no bucket of GET /v1/usage.
      {
        key_id: b,
        day: dayOf(at(old, 24)),
        ...{ events: 0, accepted: 0, deducted: 4 },
        ...{ charged: null, overage: null, insufficient: null, dead: null },
      },
    ]);
    // A roll-up after the drop leaves the dropped days to the retention.
    await c.query(`UPDATE ledger_retention SET rolled_through = $1::date - 10`, [dayOf(old)]);
    const again = await rollUpDays(c);
    expect(again.days[0]).toBe(dayOf(r.eventsSince!));
    const kept = await c.query('SELECT count(*)::int AS n FROM usage_daily WHERE day < $1::date', [
      dayOf(monthStart(2)),
    ]);
    expect(kept.rows[0].n).toBe(3);
  });
});
