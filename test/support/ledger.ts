// Test reads of the ledger: events with their derived status (the view
// usage_event_status), what a key has pending, and a fixture helper that writes
// events the way ingestion does (insertEvents).
import type { PrismaClient } from '../../src/db/prisma.js';
import type { AttemptRecord } from '../../src/ledger/attempts.js';
import type { Sql } from '../../src/ledger/db.js';
import {
  type EventRow,
  type EventStatus,
  type EventWithStatus,
  eventsInRange,
  insertEvents,
} from '../../src/ledger/events.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { recordOrder } from '../../src/ledger/orders.js';
import { storeWebhookMessage } from '../../src/ledger/webhook-messages.js';

/** A batching key of service s1, mode m1. */
export const testKey = (openId: string, isTestEnv = false) => ({
  openId,
  serviceId: 's1',
  serviceModeId: 'm1',
  isTestEnv,
});

/** The id of testKey(openId), created if need be. */
export async function testKeyId(db: Sql, openId: string): Promise<number> {
  return [...(await upsertKeys(db, [testKey(openId)])).values()][0]!;
}

/** An event row as ingestion writes it. */
export const eventRow = (
  eventId: string,
  keyId: number,
  count = 1,
  attributes: string | null = null,
): EventRow => ({
  eventId,
  keyId,
  count,
  occurredAt: null,
  enqueuedAt: new Date().toISOString(),
  attributes,
});

/** All of a key's events in seq order, each with its status and batch. */
export async function keyEvents(db: Sql, keyId: number): Promise<EventWithStatus[]> {
  return eventsInRange(db, keyId, 0n, 1n << 62n, 1_000_000);
}

/** The statuses of a key's events, in seq order. */
export async function keyStatuses(db: Sql, keyId: number): Promise<EventStatus[]> {
  return (await keyEvents(db, keyId)).map((e) => e.status);
}

/**
 * What the key has pending as the ledger itself defines it (the events after the
 * key's batched_seq, which the next batch takes), counted one by one.
 */
export async function pendingOfKey(db: Sql, keyId: number): Promise<{ events: number; uses: number }> {
  const rows = await db.$queryRaw<{ events: number; uses: number }[]>`
    SELECT count(e.seq)::int AS events, coalesce(sum(e.count), 0)::int AS uses
    FROM meter_key k LEFT JOIN usage_event e ON e.key_id = k.id AND e.seq > k.batched_seq
    WHERE k.id = ${keyId}`;
  return rows[0] ?? { events: 0, uses: 0 };
}

/** Number of events with this status (of these keys, if given), counted in usage_event_status. */
export async function countWithStatus(db: Sql, status: EventStatus, keyIds?: number[]): Promise<number> {
  const rows = await db.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS n FROM usage_event_status
    WHERE status = ${status} AND (${keyIds === undefined} OR key_id = ANY(${keyIds ?? []}::int[]))`;
  return rows[0]!.n;
}

/** Events and uses by status (of these keys, if given), counted one by one in usage_event_status. */
export async function directEventsByStatus(
  db: Sql,
  keyIds?: number[],
): Promise<Record<string, { events: number; uses: number }>> {
  const rows = await db.$queryRaw<{ status: string; events: number; uses: number }[]>`
    SELECT status, count(*)::int AS events, sum(count)::float8 AS uses FROM usage_event_status
    WHERE ${keyIds === undefined} OR key_id = ANY(${keyIds ?? []}::int[])
    GROUP BY status`;
  return Object.fromEntries(rows.map((r) => [r.status, { events: r.events, uses: r.uses }]));
}

let fixtureSeq = 0;

/** Inserts events of these counts for the key through the ledger (insertEvents); returns their eventIds. */
export async function addEvents(
  db: PrismaClient,
  keyId: number,
  counts: number[],
  prefix = 'fx',
): Promise<string[]> {
  const rows = counts.map((count) => ({
    eventId: `${prefix}-${process.pid}-${++fixtureSeq}`,
    keyId,
    count,
    occurredAt: null,
    enqueuedAt: new Date().toISOString(),
    attributes: null,
  }));
  await insertEvents(db, rows);
  return rows.map((r) => r.eventId);
}

/** A successful call attempt of this batch, as the charger records one. */
export const successAttempt = (
  b: { id: bigint; outTradeNo: string; count: number },
  o: Partial<AttemptRecord> = {},
): AttemptRecord => ({
  batchId: b.id,
  outTradeNo: b.outTradeNo,
  count: b.count,
  startedAt: new Date(),
  durationMs: 12,
  httpStatus: 200,
  errorCode: 0,
  subErrorCode: null,
  description: null,
  logid: `LOG-${b.id}`,
  outcome: 'success',
  errorKind: null,
  workerId: 'w1',
  ...o,
});

/** An order event of service s1 / mode m1 as the webhook processor records one (its message too). */
export async function addOrder(
  db: PrismaClient,
  o: { openId: string; orderId: string; orderEvent?: number; remaining?: number },
): Promise<void> {
  const message = await storeWebhookMessage(db, {
    msgId: `msg-${o.orderId}`,
    event: 'service_market_order',
    body: '{}',
  });
  await recordOrder(
    db,
    message.id,
    {
      orderId: o.orderId,
      openId: o.openId,
      orderEvent: o.orderEvent ?? 1,
      serviceId: 's1',
      serviceModeId: 'm1',
      remainServiceTimes: o.remaining ?? null,
      effectiveTime: null,
      expireTime: null,
      logId: null,
    },
    new Date(),
  );
}
