// The `notify` processor against real PostgreSQL, Redis and a real receiver: only
// the newest redelivery round's job sends; a redelivery has a retry schedule of its
// own; a job that throws (the ledger failing) is retried with the meter's backoff.
import type { Job } from 'bullmq';
import { DelayedError } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import type { Sql } from '../../src/ledger/db.js';
import { dispatchNotifications } from '../../src/ledger/notifications.js';
import type { Ledger } from '../../src/ledger/pg-ledger.js';
import { markForRedelivery } from '../../src/ledger/webhook-endpoints.js';
import { createLogger } from '../../src/logger.js';
import { meterBackoff } from '../../src/metering/backoff.js';
import { AddressGuard } from '../../src/notify/address-guard.js';
import { DeliveryProcessor } from '../../src/notify/delivery-processor.js';
import { startNotifier } from '../../src/notify/notifier.js';
import type { DeliveryJobData } from '../../src/notify/queue.js';
import { DEFAULT_RETRY_SCHEDULE } from '../../src/notify/retry-schedule.js';
import { DeliverySender } from '../../src/notify/send-delivery.js';
import { addEndpoint, waitUntil } from '../support/notify.js';
import { createTestDatabase, redisUrl, uniquePrefix } from '../support/services.js';
import { type Receiver, startReceiver } from '../support/webhook-receiver.js';

let db: PrismaClient;
let receiver: Receiver;
let answers: number[];
const sender = new DeliverySender(new AddressGuard(['127.0.0.1']));
const logger = createLogger({ level: 'silent' });
let processor: DeliveryProcessor;
beforeAll(async () => {
  db = createPrisma(await createTestDatabase('delivery_processor'), { poolSize: 6 });
  processor = new DeliveryProcessor({
    db,
    sender,
    schedule: DEFAULT_RETRY_SCHEDULE,
    disableAfterSec: 86_400,
    logger,
  });
  receiver = await startReceiver((n) => answers[n] ?? 200);
});
afterAll(async () => {
  await receiver.close();
  await sender.close();
  await db.$disconnect();
});
beforeEach(async () => {
  answers = [];
  receiver.received.length = 0;
  await db.webhookEndpoint.deleteMany();
});

/** One dispatched delivery to the receiver; returns its id and endpoint. */
async function oneDelivery(path: string) {
  const endpointId = await addEndpoint(db, `${receiver.url}${path}`, ['batch.dead']);
  await db.notification.create({ data: { type: 'batch.dead', data: { path } } });
  const { deliveryIds } = await dispatchNotifications(db, 10);
  return { id: deliveryIds[0]!, endpointId };
}
const job = (id: bigint, round: number) =>
  ({
    data: { deliveryId: String(id), round },
    moveToDelayed: vi.fn(async () => {}),
  }) as unknown as Job<DeliveryJobData> & {
    moveToDelayed: ReturnType<typeof vi.fn>;
  };

describe('DeliveryProcessor', () => {
  it("sends only in the newest round: an earlier round's delayed job does nothing", async () => {
    answers = [500];
    const { id, endpointId } = await oneDelivery('/rounds');
    const first = job(id, 0);
    await expect(processor.process(first, 'token')).rejects.toBeInstanceOf(DelayedError);
    const delayedTo = first.moveToDelayed.mock.calls[0]![0] as number;
    expect(delayedTo - Date.now()).toBeGreaterThan(1_000);
    expect(delayedTo - Date.now()).toBeLessThanOrEqual(5_000);
    expect(await db.notificationDelivery.findUniqueOrThrow({ where: { id } })).toMatchObject({
      status: 'pending',
      attempts: 1,
      lastStatusCode: 500,
    });

    expect((await markForRedelivery(db, endpointId, id))!.round).toBe(1);
    expect(await processor.process(job(id, 0), 'token')).toBe('not_pending');
    expect(receiver.received).toHaveLength(1);
    expect(await processor.process(job(id, 1), 'token')).toBe('delivered');
    expect(receiver.received).toHaveLength(2);
    expect(await processor.process(job(id, 1), 'token')).toBe('not_pending');
    expect(await db.notificationDelivery.findUniqueOrThrow({ where: { id } })).toMatchObject({
      status: 'delivered',
      attempts: 2,
      redeliveries: 1,
    });
  });

  it('gives a redelivered old delivery a schedule of its own, not one last attempt', async () => {
    answers = [500];
    const { id, endpointId } = await oneDelivery('/old');
    // Given up long ago after 100 attempts.
    await db.notificationDelivery.update({
      where: { id },
      data: { status: 'failed', attempts: 100, retryFrom: new Date(Date.now() - 4 * 86_400_000) },
    });
    await markForRedelivery(db, endpointId, id);
    const j = job(id, 1);
    await expect(processor.process(j, 'token')).rejects.toBeInstanceOf(DelayedError);
    // A first failure of the new round: retried within about 5 s (not in an hour, not given up).
    expect((j.moveToDelayed.mock.calls[0]![0] as number) - Date.now()).toBeLessThanOrEqual(5_000);
    expect((await db.notificationDelivery.findUniqueOrThrow({ where: { id } })).status).toBe('pending');
  });

  it('a job that throws (the ledger failing) is retried with the meter backoff, soon', async () => {
    await oneDelivery('/flaky');
    await db.notificationDelivery.deleteMany();
    await db.notification.updateMany({ data: { dispatchedAt: null } });
    let failures = 2;
    const flaky: Ledger = {
      $queryRaw: ((strings: TemplateStringsArray, ...values: unknown[]) => {
        if (strings.join('').includes('SET attempts = d.attempts + 1') && failures-- > 0)
          return Promise.reject(new Error('test: the ledger is unreachable'));
        return db.$queryRaw(strings, ...values);
      }) as Sql['$queryRaw'],
      $executeRaw: db.$executeRaw.bind(db) as Sql['$executeRaw'],
      $transaction: (work) => db.$transaction(work),
    };
    const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const notifier = startNotifier({
      db: flaky,
      connection: () => redis.duplicate(),
      prefix: uniquePrefix('flaky'),
      logger,
      allowedHosts: ['127.0.0.1'],
      retryBaseMs: 5_000,
      giveUpAfterSec: 3_600,
      disableAfterSec: 3_600,
      concurrency: 2,
      // A stalled job would wait 15 s: the retry must come from the backoff.
      lockDurationMs: 30_000,
      backoffStrategy: meterBackoff({ baseMs: 50, maxMs: 200 }),
      pollMs: 50,
    });
    try {
      const started = Date.now();
      await waitUntil('delivered', async () => (receiver.received.length > 0 ? true : undefined), 8_000);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(failures).toBeLessThan(0);
    } finally {
      await notifier.close();
      redis.disconnect();
    }
  });
});
