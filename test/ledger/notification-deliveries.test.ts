// A delivery's recorded outcome and its endpoint's health, on real PostgreSQL, with
// many deliveries to one endpoint recorded at once (as the notify queue's
// concurrency does): no deadlock, and the endpoint's failing spell is right.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { recordDeliveryAttempt, startDeliveryAttempt } from '../../src/ledger/notification-deliveries.js';
import { dispatchNotifications } from '../../src/ledger/notifications.js';
import { createPgLedger, type PgLedger } from '../../src/ledger/pg-ledger.js';
import { addEndpoint } from '../support/notify.js';
import { createTestDatabase } from '../support/services.js';

let db: PrismaClient;
let ledger: PgLedger;
beforeAll(async () => {
  const url = await createTestDatabase('notification_deliveries');
  db = createPrisma(url);
  ledger = createPgLedger(url, { poolSize: 16 });
});
afterAll(async () => {
  await ledger.$disconnect();
  await db.$disconnect();
});

describe('recordDeliveryAttempt', () => {
  it('records hundreds of outcomes to one endpoint at once without a deadlock; a spell starts, ends and disables', async () => {
    const endpointId = await addEndpoint(db, 'http://127.0.0.1:9/x', ['batch.dead']);
    await db.notification.createMany({
      data: Array.from({ length: 300 }, () => ({ type: 'batch.dead', data: {} })),
    });
    const { deliveryIds } = await dispatchNotifications(ledger, 1_000);
    expect(deliveryIds).toHaveLength(300);
    for (const id of deliveryIds) expect((await startDeliveryAttempt(ledger, id, 0)).kind).toBe('send');
    // Failures and successes interleaved, 16 statements at a time on 16 connections.
    const results = await Promise.allSettled(
      deliveryIds.map((id, i) =>
        recordDeliveryAttempt(
          ledger,
          id,
          0,
          i % 3 === 0
            ? { kind: 'delivered', statusCode: 200 }
            : { kind: 'retry', delayMs: 1_000, statusCode: 500, error: 'HTTP 500' },
          86_400,
        ),
      ),
    );
    expect(
      results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
    ).toEqual([]);
    expect(await db.notificationDelivery.count({ where: { status: 'delivered' } })).toBe(100);
    expect(await db.notificationDelivery.count({ where: { status: 'pending', lastStatusCode: 500 } })).toBe(
      200,
    );

    // A success ends the spell; a failure starts one; a failure past the limit disables.
    const [a, b, c] = deliveryIds.filter((_, i) => i % 3 !== 0);
    await recordDeliveryAttempt(ledger, a!, 0, { kind: 'delivered', statusCode: 204 }, 86_400);
    expect(
      (await db.webhookEndpoint.findUniqueOrThrow({ where: { id: endpointId } })).failingSince,
    ).toBeNull();
    await recordDeliveryAttempt(ledger, b!, 0, { kind: 'retry', delayMs: 1, error: 'HTTP 502' }, 86_400);
    const failing = await db.webhookEndpoint.findUniqueOrThrow({ where: { id: endpointId } });
    expect(failing).toMatchObject({ enabled: true, disabledAt: null });
    expect(failing.failingSince).not.toBeNull();
    await db.webhookEndpoint.update({
      where: { id: endpointId },
      data: { failingSince: new Date(Date.now() - 86_401_000) },
    });
    // Failures racing past the limit: the endpoint is disabled once, by one of them.
    const past = deliveryIds.filter((_, i) => i % 3 !== 0).slice(3, 23);
    const raced = await Promise.all(
      past.map((id) =>
        recordDeliveryAttempt(ledger, id, 0, { kind: 'retry', delayMs: 1, error: 'HTTP 503' }, 86_400),
      ),
    );
    expect(raced.filter((r) => r.disabledEndpoint)).toHaveLength(1);
    expect(c).toBeDefined();
    const disabled = await db.webhookEndpoint.findUniqueOrThrow({ where: { id: endpointId } });
    expect(disabled.enabled).toBe(false);
    expect(disabled.disabledReason).toMatch(/^failing since \S+Z: HTTP 503$/);
  });
});
