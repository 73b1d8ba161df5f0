// The outbox's dispatch on real PostgreSQL and Redis: each notification becomes one
// delivery per endpoint that wants it, once, however many dispatchers race; a
// delivery whose job was lost is enqueued again.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { dispatchNotifications } from '../../src/ledger/notifications.js';
import { createLogger } from '../../src/logger.js';
import { NotificationDispatcher } from '../../src/notify/dispatcher.js';
import { createNotifyQueue } from '../../src/notify/queue.js';
import { addEndpoint } from '../support/notify.js';
import { createTestDatabase, redisUrl, uniquePrefix } from '../support/services.js';

describe('dispatchNotifications', () => {
  let db: PrismaClient;
  beforeAll(async () => {
    db = createPrisma(await createTestDatabase('dispatch'), { poolSize: 8 });
  });
  afterAll(async () => db.$disconnect());

  const notify = (type: string, endpointId?: bigint) =>
    db.notification.create({ data: { type, data: { n: 1 }, endpointId: endpointId ?? null } });

  it('makes one delivery per enabled endpoint that wants the type, once; a targeted one to its endpoint only', async () => {
    const a = await addEndpoint(db, 'http://127.0.0.1:9/a', ['batch.dead', 'balance.low']);
    const b = await addEndpoint(db, 'http://127.0.0.1:9/b', ['batch.dead', 'balance.low']);
    const off = await addEndpoint(db, 'http://127.0.0.1:9/off', ['batch.dead'], { enabled: false });
    const dead = await notify('batch.dead');
    const low = await notify('balance.low', b);
    const unwanted = await notify('purchase.updated');

    const first = await dispatchNotifications(db, 100);
    expect(first.notifications).toBe(3);
    const deliveries = await db.notificationDelivery.findMany({
      select: { notificationId: true, endpointId: true },
    });
    expect(deliveries.map((d) => `${d.notificationId}>${d.endpointId}`).sort()).toEqual(
      [`${dead.id}>${a}`, `${dead.id}>${b}`, `${low.id}>${b}`].sort(),
    );
    expect(first.deliveryIds).toHaveLength(3);
    expect(await db.notificationDelivery.count({ where: { endpointId: off } })).toBe(0);
    const again = await dispatchNotifications(db, 100);
    expect(again).toEqual({ notifications: 0, deliveryIds: [] });
    expect(
      (await db.notification.findUniqueOrThrow({ where: { id: unwanted.id } })).dispatchedAt,
    ).not.toBeNull();
    await db.notificationDelivery.deleteMany();
    await db.notification.deleteMany();
    await db.webhookEndpoint.deleteMany();
  });

  it('four dispatchers racing over 400 notifications make each delivery exactly once', async () => {
    await addEndpoint(db, 'http://127.0.0.1:9/a', ['batch.dead']);
    await addEndpoint(db, 'http://127.0.0.1:9/b', ['batch.dead']);
    await db.notification.createMany({
      data: Array.from({ length: 400 }, () => ({ type: 'batch.dead', data: {} })),
    });
    const ids: bigint[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (;;) {
          const r = await dispatchNotifications(db, 37);
          ids.push(...r.deliveryIds);
          if (r.notifications === 0) return;
        }
      }),
    );
    expect(ids).toHaveLength(800);
    expect(new Set(ids.map(String)).size).toBe(800);
    expect(await db.notificationDelivery.count()).toBe(800);
    expect(await db.notification.count({ where: { dispatchedAt: null } })).toBe(0);
    await db.notificationDelivery.deleteMany();
    await db.notification.deleteMany();
    await db.webhookEndpoint.deleteMany();
  });

  it('enqueues what it dispatches, and again a pending delivery whose job was lost', async () => {
    const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const queue = createNotifyQueue(redis, uniquePrefix('dispatch'));
    try {
      await addEndpoint(db, 'http://127.0.0.1:9/a', ['batch.dead']);
      await notify('batch.dead');
      // Dispatched, and then the process died before enqueueing: no job.
      const lost = await dispatchNotifications(db, 10);
      expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 0 });
      await notify('batch.dead');
      const d = new NotificationDispatcher({
        db,
        queue,
        logger: createLogger({ level: 'silent' }),
        sweepMs: 0,
        overdueSec: 0,
      });
      await d.pass();
      const jobs = await queue.getJobs(['waiting']);
      const all = await db.notificationDelivery.findMany({ orderBy: { id: 'asc' } });
      expect(all).toHaveLength(2);
      expect(jobs.map((j) => j.id).sort()).toEqual(all.map((x) => `d-${x.id}`).sort());
      expect(jobs.map((j) => j.data.deliveryId)).toContain(String(lost.deliveryIds[0]));
      // Enqueueing again is one job per delivery, not two.
      await d.pass();
      expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 2 });
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
      redis.disconnect();
    }
  });
});
