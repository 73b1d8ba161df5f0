// Webhook endpoints and deliveries for tests.

import { setTimeout as sleep } from 'node:timers/promises';
import type { PrismaClient } from '../../src/generated/prisma/client.js';
import { createEndpoint } from '../../src/ledger/webhook-endpoints.js';
import type { NotificationType } from '../../src/notify/event-types.js';

/** A usage event of service s1, mode m1. */
export const usage = (eventId: string, openId: string, count: number) => ({
  eventId,
  openId,
  serviceId: 's1',
  serviceModeId: 'm1',
  count,
});

/** Pipeline env for webhooks to a receiver on this machine, retrying fast. */
export const NOTIFY_TEST_ENV = { NOTIFY_ALLOWED_HOSTS: '127.0.0.1', NOTIFY_RETRY_BASE_MS: '200' };

export async function addEndpoint(
  db: PrismaClient,
  url: string,
  eventTypes: NotificationType[],
  o: { secret?: string; threshold?: number; enabled?: boolean } = {},
): Promise<bigint> {
  const e = await createEndpoint(
    db,
    { url, eventTypes, description: '', lowBalanceThreshold: o.threshold ?? 10 },
    o.secret ?? 'whsec_test',
  );
  if (o.enabled === false)
    await db.webhookEndpoint.update({
      where: { id: BigInt(e.id) },
      data: { enabled: false, disabledReason: 'test', disabledAt: new Date() },
    });
  return BigInt(e.id);
}

/** Waits until `check` returns something other than undefined. */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
