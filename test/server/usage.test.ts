// GET /v1/usage (src/server/api-usage.ts): a user's uses of a service per hour or
// day of arrival, per service mode, by what became of them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formBatch, settleBatch } from '../../src/ledger/batches.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { addEvents } from '../support/ledger.js';
import { API_KEY, startTestServer, type TestServer } from './helpers.js';

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ label: 'usage' });
});
afterAll(async () => s?.close());

const usage = (query: string, auth = `Bearer ${API_KEY}`) =>
  fetch(`${s.url}/v1/usage?${query}`, { headers: { authorization: auth } });

async function keyOf(serviceModeId: string): Promise<number> {
  const ids = await upsertKeys(s.db, [{ openId: 'u-use', serviceId: 's1', serviceModeId, isTestEnv: false }]);
  return [...ids.values()][0]!;
}

/** Events of these counts that arrived at `at`. */
async function arrived(keyId: number, counts: number[], at: string): Promise<void> {
  const ids = await addEvents(s.db, keyId, counts, `use-${at}`);
  await s.db
    .$executeRaw`UPDATE usage_event SET received_at = ${new Date(at)} WHERE event_id = ANY(${ids}::text[])`;
}

async function settle(keyId: number, status: 'charged' | 'insufficient'): Promise<void> {
  const { batch } = await formBatch(s.db, {
    keyId,
    outTradeNo: `U-${keyId}-${Math.random()}`,
    maxEvents: 100,
    maxCount: 1_000,
    deadlineSec: 60,
  });
  await settleBatch(s.db, null, batch!.id, { status });
}

describe('GET /v1/usage', () => {
  it('gives uses per hour and per mode, by what became of them', async () => {
    const basic = await keyOf('basic');
    const pro = await keyOf('pro');
    await arrived(basic, [1, 2], '2026-11-30T08:10:00Z');
    await arrived(basic, [4], '2026-11-30T09:59:00Z');
    await settle(basic, 'charged'); // the three events above
    await arrived(basic, [5], '2026-11-30T09:30:00Z'); // waiting
    await arrived(pro, [3], '2026-11-30T08:20:00Z');
    await settle(pro, 'insufficient');

    const res = await usage('openId=u-use&serviceId=s1&from=2026-11-30T08:00:00Z&to=2026-11-30T10:00:00Z');
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ openId: 'u-use', serviceId: 's1', granularity: 'hour' });
    const rows = body.buckets.map((b: Record<string, unknown>) => [
      b.start,
      b.serviceModeId,
      b.accepted,
      b.charged,
      b.insufficient,
      b.waiting,
    ]);
    expect(rows).toEqual([
      ['2026-11-30T08:00:00.000Z', 'basic', 3, 3, 0, 0],
      ['2026-11-30T08:00:00.000Z', 'pro', 3, 0, 3, 0],
      ['2026-11-30T09:00:00.000Z', 'basic', 9, 4, 0, 5],
    ]);

    const days = await (
      await usage(
        'openId=u-use&serviceId=s1&from=2026-11-30T00:00:00Z&to=2026-12-01T00:00:00Z&granularity=day',
      )
    ).json();
    expect(
      days.buckets.map((b: { serviceModeId: string; accepted: number }) => [b.serviceModeId, b.accepted]),
    ).toEqual([
      ['basic', 12],
      ['pro', 3],
    ]);
  });

  it('needs an API key, and refuses a bad or too long range', async () => {
    expect((await usage('openId=u-use&serviceId=s1', 'Bearer nope')).status).toBe(401);
    expect((await usage('openId=u-use')).status).toBe(400);
    expect(
      (await usage('openId=u-use&serviceId=s1&from=2026-11-30T10:00:00Z&to=2026-11-30T09:00:00Z')).status,
    ).toBe(400);
    expect(
      (await usage('openId=u-use&serviceId=s1&from=2026-01-01T00:00:00Z&to=2026-11-30T00:00:00Z')).status,
    ).toBe(400);
    expect((await usage('openId=u-use&serviceId=s1&granularity=week')).status).toBe(400);
  });
});
