// Webhook deliveries end to end: a worker's charge run settles a batch, the trigger
// writes the notification in that transaction, the dispatcher and the `notify`
// queue deliver it to a real receiver; real PostgreSQL, Redis and the simulator.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';

import { verifyWebhook } from '../../src/notify/signature.js';
import { addEndpoint, NOTIFY_TEST_ENV, usage, waitUntil } from '../support/notify.js';
import { fundUsers, type Pipeline, startPipeline } from '../support/pipeline.js';
import { type Receiver, startReceiver } from '../support/webhook-receiver.js';

const ev = usage;

describe('webhook deliveries', () => {
  let p: Pipeline | undefined;
  const receivers: Receiver[] = [];
  const receiver = async (answer?: Parameters<typeof startReceiver>[0]) => {
    const r = await startReceiver(answer);
    receivers.push(r);
    return r;
  };
  afterEach(async () => {
    await p?.close();
    p = undefined;
    for (const r of receivers.splice(0)) await r.close();
  });

  it('a receiver failing its first two deliveries gets the third, with the same id, body and a valid signature', async () => {
    const r = await receiver((n) => [500, 503][n] ?? 200);
    p = await startPipeline({ label: 'wh-retry', env: NOTIFY_TEST_ENV });
    const endpointId = await addEndpoint(p.db, `${r.url}/hook`, ['batch.insufficient'], {
      secret: 'whsec_r',
    });
    p.sim.setBalance({ openId: 'poor', serviceId: 's1', serviceModeId: 'm1', remaining: 5 });
    await p.send([ev('a1', 'poor', 3), ev('a2', 'poor', 4)]);
    await p.startWorker();

    const got = await r.waitFor(3, 30_000);
    const bodies = got.map((g) => verifyWebhook(g.body, g.headers['x-meter-signature'], 'whsec_r'));
    expect(new Set(bodies.map((b) => b.id)).size).toBe(1);
    expect(new Set(got.map((g) => g.body)).size).toBe(1);
    expect(got.map((g) => g.headers['x-meter-delivery-attempt'])).toEqual(['1', '2', '3']);
    // Backoff: base 200 ms, half fixed: at least 100 ms, then 200 ms between attempts.
    expect(got[1]!.at - got[0]!.at).toBeGreaterThanOrEqual(100);
    expect(got[2]!.at - got[1]!.at).toBeGreaterThanOrEqual(200);
    const batch = await p.db.chargeBatch.findFirstOrThrow();
    expect(bodies[0]).toMatchObject({
      type: 'batch.insufficient',
      data: {
        openId: 'poor',
        serviceId: 's1',
        serviceModeId: 'm1',
        isTestEnv: false,
        batchId: String(batch.id),
        outTradeNo: batch.outTradeNo,
        status: 'insufficient',
        count: 7,
        chargedCount: 0,
        errorCode: 2119001,
        eventIds: ['a1', 'a2'],
        eventIdsTotal: 2,
      },
    });
    expect(bodies[0]!.data.reason).toEqual(expect.any(String));
    expect(Date.parse(bodies[0]!.createdAt)).toBeLessThanOrEqual(got[0]!.at);

    const delivery = await waitUntil('delivered', async () => {
      const d = await p!.db.notificationDelivery.findFirstOrThrow({ where: { endpointId } });
      return d.status === 'delivered' ? d : undefined;
    });
    expect(delivery).toMatchObject({ attempts: 3, lastStatusCode: 200, notificationId: bodies[0]!.id });
    expect(
      (await p.db.webhookEndpoint.findUniqueOrThrow({ where: { id: endpointId } })).failingSince,
    ).toBeNull();
    await sleep(1_000);
    expect(r.received).toHaveLength(3);
  });

  it('sends nothing for a state change that rolled back, and sends the one that committed', async () => {
    const r = await receiver();
    p = await startPipeline({ label: 'wh-rollback', env: NOTIFY_TEST_ENV });
    await addEndpoint(p.db, `${r.url}/hook`, ['batch.dead']);
    fundUsers(p.sim, ['u1', 'u2']);
    await p.send([ev('b1', 'u1', 1), ev('b2', 'u2', 1)]);
    await p.startWorker();
    await p.waitUntilSettled();
    const [first, second] = await p.db.chargeBatch.findMany({ orderBy: { id: 'asc' } });

    const db = p.db;
    await expect(
      db.$transaction(async (tx) => {
        await tx.$executeRaw`UPDATE charge_batch SET status = 'dead', dead_reason = 'rolled back' WHERE id = ${first!.id}`;
        throw new Error('rollback');
      }),
    ).rejects.toThrow('rollback');
    // A rotation with overlap meanwhile: the delivery is signed with the new and the old secret.
    await db.webhookEndpoint.updateMany({
      data: {
        secret: 'whsec_new',
        previousSecret: 'whsec_test',
        previousSecretUntil: new Date(Date.now() + 60_000),
      },
    });
    await db.$executeRaw`UPDATE charge_batch SET status = 'dead', dead_reason = 'committed' WHERE id = ${second!.id}`;

    const [got] = await r.waitFor(1);
    expect(JSON.parse(got!.body).data).toMatchObject({ batchId: String(second!.id), reason: 'committed' });
    const header = got!.headers['x-meter-signature'] as string;
    expect(header.match(/v1=/g)).toHaveLength(2);
    for (const secret of ['whsec_new', 'whsec_test'])
      expect(verifyWebhook(got!.body, header, secret).id).toBeTruthy();
    await sleep(1_500);
    expect(r.received).toHaveLength(1);
    expect(await db.notification.count()).toBe(1);
  });

  it('a disabled endpoint gets nothing; one failing past NOTIFY_DISABLE_AFTER_SEC is disabled and its retries cancelled', async () => {
    const ok = await receiver();
    const off = await receiver();
    const failing = await receiver(() => 500);
    p = await startPipeline({
      label: 'wh-disable',
      env: { ...NOTIFY_TEST_ENV, NOTIFY_DISABLE_AFTER_SEC: '1' },
    });
    const types = ['batch.insufficient' as const];
    const okId = await addEndpoint(p.db, `${ok.url}/hook`, types);
    const offId = await addEndpoint(p.db, `${off.url}/hook`, types, { enabled: false });
    const failingId = await addEndpoint(p.db, `${failing.url}/hook`, types);
    for (const u of ['poor1', 'poor2'])
      p.sim.setBalance({ openId: u, serviceId: 's1', serviceModeId: 'm1', remaining: 0 });
    await p.send([ev('c1', 'poor1', 1)]);
    await p.startWorker();

    await ok.waitFor(1);
    const endpoint = await waitUntil(
      'the failing endpoint disabled',
      async () => {
        const e = await p!.db.webhookEndpoint.findUniqueOrThrow({ where: { id: failingId } });
        return e.enabled ? undefined : e;
      },
      20_000,
    );
    expect(endpoint.disabledReason).toMatch(/^failing since \S+Z: HTTP 500/);
    expect(endpoint.disabledAt).not.toBeNull();
    expect(failing.received.length).toBeGreaterThanOrEqual(2);
    await waitUntil('its delivery cancelled', async () => {
      const d = await p!.db.notificationDelivery.findFirstOrThrow({ where: { endpointId: failingId } });
      return d.status === 'cancelled' ? d : undefined;
    });
    const failedSoFar = failing.received.length;

    // A second state change: the enabled endpoint gets it; the two disabled ones do not.
    await p.send([ev('c2', 'poor2', 1)]);
    await ok.waitFor(2);
    await sleep(1_500);
    expect(off.received).toEqual([]);
    expect(failing.received).toHaveLength(failedSoFar);
    expect(await p.db.notificationDelivery.count({ where: { endpointId: offId } })).toBe(0);
    expect(await p.db.notificationDelivery.count({ where: { endpointId: failingId } })).toBe(1);
    expect(await p.db.notificationDelivery.count({ where: { endpointId: okId, status: 'delivered' } })).toBe(
      2,
    );
  });
});
