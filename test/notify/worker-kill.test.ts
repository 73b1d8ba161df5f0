// A worker SIGKILLed after the state change committed and while its delivery is in
// flight: the notification is still delivered, by the next worker, with the same id.
import { afterEach, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../../src/notify/signature.js';
import { addEndpoint, NOTIFY_TEST_ENV, waitUntil } from '../support/notify.js';
import { exited, type Pipeline, startPipeline } from '../support/pipeline.js';
import { type Receiver, startReceiver } from '../support/webhook-receiver.js';

describe('webhook delivery across a worker crash', () => {
  let p: Pipeline | undefined;
  let r: Receiver | undefined;
  afterEach(async () => {
    await p?.close();
    await r?.close();
  });

  it('delivers after restart what a killed worker had committed and not delivered', async () => {
    // The first worker's request is never answered: it is killed holding it.
    r = await startReceiver((n) => (n === 0 ? 'hang' : 200));
    p = await startPipeline({ label: 'wh-kill', env: { ...NOTIFY_TEST_ENV, METER_STALL_SEC: '3' } });
    await addEndpoint(p.db, `${r.url}/hook`, ['batch.insufficient', 'batch.dead'], { secret: 'whsec_k' });
    for (const u of ['poor1', 'poor2'])
      p.sim.setBalance({ openId: u, serviceId: 's1', serviceModeId: 'm1', remaining: 1 });
    await p.send([{ eventId: 'k1', openId: 'poor1', serviceId: 's1', serviceModeId: 'm1', count: 2 }]);

    const first = p.spawnWorker();
    const [inFlight] = await r.waitFor(1, 60_000);
    first.kill('SIGKILL');
    await exited(first);
    // The batch's state change had committed before the delivery began.
    expect(await p.db.chargeBatch.findFirstOrThrow()).toMatchObject({ status: 'insufficient' });
    // While no worker runs: a state change committed and not dispatched (an operator's
    // direct fix of the ledger stands in for any), and events waiting in Redis.
    const batch = await p.db.chargeBatch.findFirstOrThrow();
    await p.db
      .$executeRaw`UPDATE charge_batch SET status = 'dead', dead_reason = 'no worker' WHERE id = ${batch.id}`;
    expect(await p.db.notification.count({ where: { dispatchedAt: null } })).toBe(1);
    await p.send([{ eventId: 'k2', openId: 'poor2', serviceId: 's1', serviceModeId: 'm1', count: 2 }]);

    p.spawnWorker();
    const got = await r.waitFor(4, 60_000);
    const bodies = got.map((g) => verifyWebhook(g.body, g.headers['x-meter-signature'], 'whsec_k'));
    const killedId = JSON.parse(inFlight!.body).id;
    // The killed delivery came again with the same id and body; the others once each.
    expect(got.filter((g) => g.body === inFlight!.body)).toHaveLength(2);
    expect(bodies.filter((b) => b.id === killedId)).toHaveLength(2);
    expect(bodies.map((b) => `${b.type}:${(b.data as { openId: string }).openId}`).sort()).toEqual([
      'batch.dead:poor1',
      'batch.insufficient:poor1',
      'batch.insufficient:poor1',
      'batch.insufficient:poor2',
    ]);
    const deliveries = await waitUntil('all delivered', async () => {
      const ds = await p!.db.notificationDelivery.findMany({ orderBy: { id: 'asc' } });
      return ds.length === 3 && ds.every((d) => d.status === 'delivered') ? ds : undefined;
    });
    expect(deliveries.map((d) => d.attempts).sort()).toEqual([1, 1, 2]);
    expect(await p.db.notification.count()).toBe(3);
  }, 120_000);
});
