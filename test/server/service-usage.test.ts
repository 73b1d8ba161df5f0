// GET /api/service-usage (src/server/api-service-usage.ts, SQL in
// src/ledger/service-usage.ts): per service mode, uses received and deducted per
// bucket over the last hour, day or 30 days (the days rolled up from usage_daily).
// Events are written through the ledger's insert and given known received_at minutes; calls are written as the charger records
// them, at known started_at minutes, so every number asserted is known.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertKeys } from '../../src/ledger/keys.js';
import { addEvents } from '../support/ledger.js';
import { startTestServer, type TestServer } from './helpers.js';

let s: TestServer;
/** Start of the database's current minute when the fixtures were written. */
let now0: number;

const MIN = 60_000;
/** An instant in the minute `ago` minutes before now0 (seconds into it). */
const at = (ago: number, sec = 10) => new Date(now0 - ago * MIN + sec * 1000);
const minuteOf = (d: Date) => new Date(Math.floor(d.getTime() / MIN) * MIN).toISOString();
const quarterOf = (d: Date) => new Date(Math.floor(d.getTime() / (15 * MIN)) * 15 * MIN).toISOString();

async function keyOf(openId: string, serviceId: string, serviceModeId: string, isTestEnv = false) {
  const ids = await upsertKeys(s.db, [{ openId, serviceId, serviceModeId, isTestEnv }]);
  return [...ids.values()][0]!;
}

/** Events of these counts that reached the ledger at `when`. */
async function arrived(keyId: number, counts: number[], when: Date): Promise<void> {
  const ids = await addEvents(s.db, keyId, counts, 'svc-use');
  await s.db.$executeRaw`UPDATE usage_event SET received_at = ${when} WHERE event_id = ANY(${ids}::text[])`;
}

let made = 0;
/** A batch of the key with its calls (each with its outcome and start), as the charger leaves them. */
async function charged(keyId: number, count: number, calls: { outcome: 'success' | 'error'; at: Date }[]) {
  made += 1;
  const ok = calls.some((c) => c.outcome === 'success');
  const b = await s.db.chargeBatch.create({
    data: {
      keyId,
      outTradeNo: `svc-use-${made}`,
      count,
      eventCount: 0,
      status: ok ? 'charged' : 'open',
      chargedCount: ok ? count : 0,
      attempts: calls.length,
      deadlineAt: new Date(Date.now() + 60_000),
      finishedAt: ok ? new Date() : null,
    },
  });
  await s.db.callAttempt.createMany({
    data: calls.map((c, i) => ({
      batchId: b.id,
      attemptNo: i + 1,
      outTradeNo: b.outTradeNo,
      count,
      startedAt: c.at,
      durationMs: 10,
      outcome: c.outcome,
      errorKind: c.outcome === 'error' ? 'transient' : null,
      httpStatus: c.outcome === 'error' ? 503 : 200,
      logid: `L-svc-${made}-${i}`,
    })),
  });
}

interface Point {
  t: string;
  received: number;
  deducted: number;
}
interface Series {
  serviceId: string;
  serviceModeId: string;
  isTestEnv: boolean;
  totals: { received: number; deducted: number };
  points: Point[];
}
interface Answer {
  window: string;
  bucketMinutes: number;
  from: string;
  to: string;
  services: Series[];
}

async function get(query: string): Promise<Answer> {
  const res = await s.api(`/api/service-usage${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Answer;
}

/** A series' buckets with a use, by start: { t: [received, deducted] }. */
const nonZero = (x: Series) =>
  Object.fromEntries(
    x.points.filter((p) => p.received > 0 || p.deducted > 0).map((p) => [p.t, [p.received, p.deducted]]),
  );

const idOf = (x: Series) => `${x.serviceId}/${x.serviceModeId}${x.isTestEnv ? ' test' : ''}`;

beforeAll(async () => {
  s = await startTestServer({ label: 'service_usage' });
  const [row] = await s.db.$queryRaw<{ m: Date }[]>`SELECT date_trunc('minute', now()) AS m`;
  now0 = row!.m.getTime();

  const a1 = await keyOf('su-1', 'svc-a', 'a-basic');
  const a1b = await keyOf('su-2', 'svc-a', 'a-basic');
  const a2 = await keyOf('su-1', 'svc-a', 'a-pro');
  const aTest = await keyOf('su-1', 'svc-a', 'a-basic', true);
  const b1 = await keyOf('su-3', 'svc-b', 'b-std');

  // svc-a / a-basic, two users: 2 + 3 + 4 at minute −2, 1 at −5.
  await arrived(a1, [2, 3], at(2, 5));
  await arrived(a1b, [4], at(2, 40));
  await arrived(a1b, [1], at(5));
  // svc-a / a-pro: 7 at −3.
  await arrived(a2, [7], at(3));
  // svc-a / a-basic in test mode: 6 at −2.
  await arrived(aTest, [6], at(2));
  // svc-b: 10 at −1; 2 at −70 (the day only); 100 a day and more ago (neither).
  await arrived(b1, [10], at(1, 30));
  await arrived(b1, [2], at(70));
  await arrived(b1, [100], at(25 * 60));

  // a-basic: a failed call at −3 then 5 deducted at −2; the other user's 5 deducted at −1.
  await charged(a1, 5, [
    { outcome: 'error', at: at(3) },
    { outcome: 'success', at: at(2, 20) },
  ]);
  await charged(a1b, 5, [{ outcome: 'success', at: at(1) }]);
  // Test mode: 6 deducted at −2.
  await charged(aTest, 6, [{ outcome: 'success', at: at(2, 50) }]);
  // svc-b: 10 failing at −1 (nothing deducted); 2 deducted at −70; 100 deducted 25 h ago.
  await charged(b1, 10, [{ outcome: 'error', at: at(1) }]);
  await charged(b1, 2, [{ outcome: 'success', at: at(70, 30) }]);
  await charged(b1, 100, [{ outcome: 'success', at: at(25 * 60) }]);
});
afterAll(async () => s?.close());

describe('GET /api/service-usage', () => {
  it('the hour: per minute, per service mode, uses received and deducted; test mode apart', async () => {
    const body = await get('?window=hour');
    expect(body).toMatchObject({ window: 'hour', bucketMinutes: 1 });
    expect(Date.parse(body.to) - Date.parse(body.from)).toBe(60 * MIN);
    // The current minute is the last point (the database's clock; the minute may have turned since).
    expect(Date.parse(body.to)).toBeGreaterThanOrEqual(now0 + MIN);
    expect(body.services.map(idOf)).toEqual([
      'svc-a/a-basic',
      'svc-a/a-basic test',
      'svc-a/a-pro',
      'svc-b/b-std',
    ]);
    for (const x of body.services) {
      expect(x.points).toHaveLength(60);
      expect(x.points[0]!.t).toBe(body.from);
      expect(x.points.map((p) => Date.parse(p.t) - Date.parse(body.from))).toEqual(
        Array.from({ length: 60 }, (_, i) => i * MIN),
      );
    }
    const [basic, test, pro, b] = body.services as [Series, Series, Series, Series];
    expect(nonZero(basic)).toEqual({
      [minuteOf(at(5))]: [1, 0],
      [minuteOf(at(2))]: [9, 5],
      [minuteOf(at(1))]: [0, 5],
    });
    expect(basic.totals).toEqual({ received: 10, deducted: 10 });
    expect(nonZero(test)).toEqual({ [minuteOf(at(2))]: [6, 6] });
    expect(test.totals).toEqual({ received: 6, deducted: 6 });
    expect(nonZero(pro)).toEqual({ [minuteOf(at(3))]: [7, 0] });
    expect(pro.totals).toEqual({ received: 7, deducted: 0 });
    // A failed call deducts nothing; 70 minutes ago is outside the hour.
    expect(nonZero(b)).toEqual({ [minuteOf(at(1))]: [10, 0] });
    expect(b.totals).toEqual({ received: 10, deducted: 0 });
  });

  it('the day: per minute by default (1,440 points), or in 15-minute buckets aligned to UTC', async () => {
    const perMinute = await get('?window=day');
    expect(perMinute).toMatchObject({ window: 'day', bucketMinutes: 1 });
    expect(perMinute.services.map((x) => x.points.length)).toEqual([1440, 1440, 1440, 1440]);
    const bDay = perMinute.services.find((x) => x.serviceId === 'svc-b')!;
    // 25 hours ago is outside the day.
    expect(nonZero(bDay)).toEqual({ [minuteOf(at(70))]: [2, 2], [minuteOf(at(1))]: [10, 0] });
    expect(bDay.totals).toEqual({ received: 12, deducted: 2 });

    const quarters = await get('?window=day&bucketMinutes=15');
    expect(quarters).toMatchObject({ window: 'day', bucketMinutes: 15 });
    expect(Date.parse(quarters.to) - Date.parse(quarters.from)).toBe(1440 * MIN);
    expect(Date.parse(quarters.from) % (15 * MIN)).toBe(0);
    const [basic, , , b] = quarters.services as [Series, Series, Series, Series];
    expect(b.points).toHaveLength(96);
    expect(b.points.map((p) => Date.parse(p.t) - Date.parse(quarters.from))).toEqual(
      Array.from({ length: 96 }, (_, i) => i * 15 * MIN),
    );
    expect(nonZero(b)).toEqual({ [quarterOf(at(70))]: [2, 2], [quarterOf(at(1))]: [10, 0] });
    // The a-basic uses of minutes −5, −2 and −1, in their quarters (one or two).
    const expected: Record<string, [number, number]> = {};
    for (const [when, r, d] of [
      [at(5), 1, 0],
      [at(2), 9, 5],
      [at(1), 0, 5],
    ] as const) {
      const q = quarterOf(when);
      const [r0, d0] = expected[q] ?? [0, 0];
      expected[q] = [r0 + r, d0 + d];
    }
    expect(nonZero(basic)).toEqual(expected);
    expect(basic.totals).toEqual({ received: 10, deducted: 10 });
  });

  it('serviceId keeps that service only; an unknown one has none', async () => {
    const b = await get('?window=hour&serviceId=svc-b');
    expect(b.services.map(idOf)).toEqual(['svc-b/b-std']);
    expect(b.services[0]!.totals).toEqual({ received: 10, deducted: 0 });
    const none = await get('?window=day&bucketMinutes=15&serviceId=nobody');
    expect(none).toMatchObject({ window: 'day', bucketMinutes: 15, services: [] });
    expect(Date.parse(none.to) - Date.parse(none.from)).toBe(1440 * MIN);
  });

  it('the month: a point per UTC day, the rolled-up days from usage_daily, the others from the events', async () => {
    const DAY = 1440 * MIN;
    const today = Math.floor(now0 / DAY) * DAY;
    const day = (ago: number) => new Date(today - ago * DAY);
    const m1 = await keyOf('su-5', 'svc-m', 'm-1');
    const m1Test = await keyOf('su-5', 'svc-m', 'm-1', true);
    // Three days ago the events say 50 received and deducted; usage_daily, on purpose,
    // says 7 and 3 (and 2 and 1 in test mode): the answer follows usage_daily.
    await arrived(m1, [50], new Date(day(3).getTime() + 10 * 60 * MIN));
    await charged(m1, 50, [{ outcome: 'success', at: new Date(day(3).getTime() + 11 * 60 * MIN) }]);
    const dayOf = (d: Date) => d.toISOString().slice(0, 10);
    await s.db.$executeRaw`INSERT INTO usage_daily (key_id, day, events, accepted, deducted) VALUES
      (${m1}, ${dayOf(day(3))}::date, 1, 7, 3), (${m1Test}, ${dayOf(day(3))}::date, 1, 2, 1),
      (${m1}, ${dayOf(day(30))}::date, 1, 1000, 1000)`;
    await s.db.$executeRaw`UPDATE ledger_retention SET rolled_through = ${dayOf(day(2))}::date`;
    // Yesterday (not rolled up yet) and today: from the events and calls.
    await arrived(m1, [4], new Date(day(1).getTime() + 12 * 60 * MIN));
    await charged(m1, 4, [{ outcome: 'success', at: new Date(day(1).getTime() + 13 * 60 * MIN) }]);
    await arrived(m1, [6], new Date(now0));

    const body = await get('?window=month&serviceId=svc-m');
    expect(body).toMatchObject({ window: 'month', bucketMinutes: 1440 });
    expect(body.from).toBe(day(29).toISOString());
    expect(body.to).toBe(day(-1).toISOString());
    expect(body.services.map(idOf)).toEqual(['svc-m/m-1', 'svc-m/m-1 test']);
    const [live, test] = body.services as [Series, Series];
    expect(live.points.map((p) => p.t)).toEqual(
      Array.from({ length: 30 }, (_, i) => day(29 - i).toISOString()),
    );
    // 30 days ago is outside the window.
    expect(nonZero(live)).toEqual({
      [day(3).toISOString()]: [7, 3],
      [day(1).toISOString()]: [4, 4],
      [day(0).toISOString()]: [6, 0],
    });
    expect(live.totals).toEqual({ received: 17, deducted: 7 });
    expect(nonZero(test)).toEqual({ [day(3).toISOString()]: [2, 1] });
    // bucketMinutes=1440 is the month's default, and the same answer.
    expect(await get('?window=month&bucketMinutes=1440&serviceId=svc-m')).toEqual(body);
  });

  it('refuses a bad query with 400, and anyone not signed in with 401', async () => {
    for (const [query, message] of [
      ['?window=week', /window/],
      ['?window=month&bucketMinutes=15', /bucketMinutes/],
      ['?window=month&bucketMinutes=1', /bucketMinutes/],
      ['?window=day&bucketMinutes=1440', /bucketMinutes/],
      ['?bucketMinutes=1440', /bucketMinutes/],
      ['?window=day&bucketMinutes=7', /bucketMinutes/],
      ['?window=hour&bucketMinutes=', /bucketMinutes/],
      ['?serviceId=has%20space', /serviceId/],
      ['?window=hour&minutes=5', /minutes/],
    ] as const) {
      const res = await s.api(`/api/service-usage${query}`);
      const body = await res.json();
      expect({ query, status: res.status }).toEqual({ query, status: 400 });
      expect(body.error.code).toBe('invalid_request');
      expect(body.error.message).toMatch(message);
    }
    const anonymous = await fetch(`${s.url}/api/service-usage?window=hour`);
    expect(anonymous.status).toBe(401);
  });

  it('the day is cached for a while: a use arriving now shows in the hour, not yet in the cached day', async () => {
    const before = await get('?window=day&bucketMinutes=15&serviceId=svc-c');
    expect(before.services).toEqual([]);
    await addEvents(s.db, await keyOf('su-4', 'svc-c', 'c-1'), [3], 'svc-use-now');
    const day = await get('?window=day&bucketMinutes=15&serviceId=svc-c');
    expect(day.services).toEqual([]);
    // The hour is kept 2 s.
    await expect
      .poll(async () => (await get('?window=hour&serviceId=svc-c')).services[0]?.totals, { timeout: 10_000 })
      .toEqual({ received: 3, deducted: 0 });
  });
});
