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
    await addEndpoint(p.db, `${r.url}/hook`, ['batch.insufficient'], { secret: 'whsec_k' });
    for (const u of ['poor1', 'poor2'])
      p.sim.setBalance({ openId: u, serviceId: 's1', serviceModeId: 'm1', remaining: 1 });
    await p.send([{ eventId: 'k1', openId: 'poor1', serviceId: 's1', serviceModeId: 'm1', count: 2 }]);

    const first = p.spawnWorker();
    const [inFlight] = await r.waitFor(1, 60_000);
    first.kill('SIGKILL');
    await exited(first);
    // The batch's state change had committed before the delivery began.
    expect(await p.db.chargeBatch.findFirstOrThrow()).toMatchObject({ status: 'insufficient' });
    // Another state change while no worker runs: its events wait in Redis.
    await p.send([{ eventId: 'k2', openId: 'poor2', serviceId: 's1', serviceModeId: 'm1', count: 2 }]);

    p.spawnWorker();
    const got = await r.waitFor(3, 60_000);
    const bodies = got.map((g) => verifyWebhook(g.body, g.headers['x-meter-signature'], 'whsec_k'));
    const killedId = JSON.parse(inFlight!.body).id;
    // The killed delivery came again with the same id and body; the other one once.
    expect(got.filter((g) => g.body === inFlight!.body)).toHaveLength(2);
    expect(bodies.map((b) => (b.data as { openId: string }).openId).sort()).toEqual([
      'poor1',
      'poor1',
      'poor2',
    ]);
    expect(bodies.filter((b) => b.id === killedId)).toHaveLength(2);
    const deliveries = await waitUntil('both delivered', async () => {
      const ds = await p!.db.notificationDelivery.findMany({ orderBy: { id: 'asc' } });
      return ds.length === 2 && ds.every((d) => d.status === 'delivered') ? ds : undefined;
    });
    expect(deliveries.map((d) => d.attempts)).toEqual([2, 1]);
    expect(await p.db.notification.count()).toBe(2);
  }, 120_000);
});
