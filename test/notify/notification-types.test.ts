// Each notification type, from the state change that causes it, as an app service
// receives it: batch.charged (opt-in), balance.low (a crossing, once, re-armed by an
// order), purchase.updated, reconcile.drift, batch.partial and batch.dead.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { reconcileKey } from '../../src/balances/reconcile.js';

import { NOTIFICATION_TYPES } from '../../src/notify/event-types.js';
import { verifyWebhook } from '../../src/notify/signature.js';
import { simulatorClient } from '../support/douyin.js';
import { addOrder } from '../support/ledger.js';
import { addEndpoint, NOTIFY_TEST_ENV, usage, waitUntil } from '../support/notify.js';
import { fundUsers, type Pipeline, startPipeline } from '../support/pipeline.js';
import { type Receiver, startReceiver } from '../support/webhook-receiver.js';

const ev = usage;
const key = (openId: string) => ({ openId, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false });

type Body = { id: string; type: string; data: Record<string, unknown> };
const bodies = (r: Receiver, type?: string): Body[] =>
  r.received
    .map((g) => verifyWebhook(g.body, g.headers['x-meter-signature'], 'whsec_test') as Body)
    .filter((b) => type === undefined || b.type === type);
const waitForType = (r: Receiver, type: string, n = 1) =>
  waitUntil(`${n} ${type}`, async () => (bodies(r, type).length >= n ? bodies(r, type) : undefined));

describe('notification types', () => {
  let p: Pipeline | undefined;
  const receivers: Receiver[] = [];
  afterEach(async () => {
    await p?.close();
    p = undefined;
    for (const r of receivers.splice(0)) await r.close();
  });

  it('batch.charged only to who opted in; balance.low once per crossing, re-armed by a purchase; purchase.updated; reconcile.drift', async () => {
    const all = await startReceiver();
    const defaults = await startReceiver();
    receivers.push(all, defaults);
    p = await startPipeline({ label: 'wh-types', env: NOTIFY_TEST_ENV });
    await addEndpoint(p.db, `${all.url}/all`, [...NOTIFICATION_TYPES]);
    await addEndpoint(
      p.db,
      `${defaults.url}/defaults`,
      NOTIFICATION_TYPES.filter((t) => t !== 'batch.charged'),
      {
        threshold: 5,
      },
    );
    fundUsers(p.sim, ['rich']);
    p.sim.setBalance({ ...key('low'), remaining: 12 });
    await p.startWorker();

    // batch.charged: one per batch, to the endpoint that asked for it.
    await p.send([ev('r1', 'rich', 2), ev('r2', 'rich', 3)]);
    const [charged] = await waitForType(all, 'batch.charged');
    expect(charged!.data).toMatchObject({
      openId: 'rich',
      status: 'charged',
      count: 5,
      chargedCount: 5,
      eventIds: ['r1', 'r2'],
    });
    expect(charged!.data.reason).toBeUndefined();

    // balance.low: 12 → 11 (no), → 9 (below 10: once), → 8 (still below: not again).
    const settle = async (events: ReturnType<typeof ev>[]) => {
      await p!.send(events);
      await p!.waitUntilSettled();
      await sleep(300); // the check follows the settled run
    };
    await settle([ev('l1', 'low', 1)]);
    await settle([ev('l2', 'low', 2)]);
    const [low] = await waitForType(all, 'balance.low');
    expect(low!.data).toMatchObject({
      openId: 'low',
      serviceModeId: 'm1',
      available: 9,
      threshold: 10,
      douyinRemaining: 11,
    });
    await settle([ev('l3', 'low', 1)]);
    await sleep(500);
    expect(bodies(all, 'balance.low')).toHaveLength(1);
    // The other endpoint's threshold is 5: 8 is not below it.
    expect(bodies(defaults, 'balance.low')).toHaveLength(0);

    // An order (the user bought 20 more): purchase.updated to both; the next check reads
    // Douyin again (28 − 1 = 27, back above 10: re-armed, nothing sent), and a later
    // fall below 10 is a new crossing.
    p.sim.setBalance({ ...key('low'), remaining: 28 });
    await addOrder(p.db, { openId: 'low', orderId: 'o-1', remaining: 28 });
    const [order] = await waitForType(defaults, 'purchase.updated');
    expect(order!.data).toMatchObject({
      openId: 'low',
      orderId: 'o-1',
      orderEvent: 1,
      remainServiceTimes: 28,
    });
    await waitForType(all, 'purchase.updated');
    await settle([ev('l4', 'low', 1)]);
    await sleep(500);
    expect(bodies(all, 'balance.low')).toHaveLength(1);
    await settle([ev('l5', 'low', 20)]);
    const lows = await waitForType(all, 'balance.low', 2);
    expect(lows[1]!.data).toMatchObject({ available: 7, douyinRemaining: 27, chargedSince: 20 });
    await settle([ev('l6', 'low', 3)]);
    const [lowAt5] = await waitForType(defaults, 'balance.low');
    expect(lowAt5!.data).toMatchObject({ available: 4, threshold: 5 });
    await sleep(500);
    expect(bodies(all, 'balance.low')).toHaveLength(2);

    // reconcile.drift: a deduction made outside the meter.
    const client = simulatorClient(p.sim, p.redis, 'wh-types');
    try {
      expect(await reconcileKey(p.db, client, key('rich'), { owner: 'test' })).toMatchObject({
        status: 'baseline',
      });
      await client.decrUserRemainTimes({ ...key('rich'), count: 2, outTradeNo: 'OUTSIDE-1' });
      await reconcileKey(p.db, client, key('rich'), { owner: 'test' });
    } finally {
      await client.close();
    }
    const [drift] = await waitForType(defaults, 'reconcile.drift');
    expect(drift!.data).toMatchObject({ openId: 'rich', drift: -2, cumulativeDrift: -2 });
    await waitForType(all, 'reconcile.drift');
    // Nothing the endpoints did not ask for; every notification once per endpoint.
    expect(bodies(defaults, 'batch.charged')).toHaveLength(0);
    for (const r of [all, defaults]) expect(new Set(bodies(r).map((b) => b.id)).size).toBe(r.received.length);
  }, 90_000);

  it('batch.partial names the overage events; batch.dead carries its reason', async () => {
    const r = await startReceiver();
    receivers.push(r);
    p = await startPipeline({
      label: 'wh-partial',
      env: {
        ...NOTIFY_TEST_ENV,
        METER_INSUFFICIENT_POLICY: 'partial',
        METER_RETRY_DEADLINE_SEC: '1',
        METER_RETRY_BASE_MS: '100',
      },
    });
    await addEndpoint(p.db, `${r.url}/hook`, ['batch.partial', 'batch.dead']);
    p.sim.setBalance({ ...key('poor'), remaining: 5 });
    await p.startWorker();
    await p.send([ev('p1', 'poor', 3), ev('p2', 'poor', 4)]);
    const [partial] = await waitForType(r, 'batch.partial');
    expect(partial!.data).toMatchObject({
      openId: 'poor',
      status: 'partial',
      count: 7,
      chargedCount: 5,
      overageCount: 2,
      eventIds: ['p1', 'p2'],
      overageEventIds: ['p2'],
      overageEventIdsTotal: 1,
    });

    fundUsers(p.sim, ['doomed']);
    p.sim.setFaults({ http5xxRate: 1 });
    await p.send([ev('d1', 'doomed', 1)]);
    const [dead] = await waitForType(r, 'batch.dead');
    expect(dead!.data).toMatchObject({ openId: 'doomed', status: 'dead', count: 1, eventIds: ['d1'] });
    expect(dead!.data.reason).toMatch(/^deadline/);
  }, 60_000);
});
