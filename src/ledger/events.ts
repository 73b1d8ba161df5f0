// Usage events (usage_event): written once, never updated. One writer at a time
// (a transaction-level advisory lock) inserts a job's events and records the
// highest seq it committed in ingest_horizon, so a batch can take its key's events
// up to that horizon knowing no write in flight will add one below it
// (src/ledger/batches.ts). An event's status is derived from the batch whose range
// holds it: the view usage_event_status (migration 20261130140000_event_ranges) is
// that rule, in one place.
import { Prisma } from '../generated/prisma/client.js';
import type { Sql } from './db.js';
import { DURABLE_COMMIT } from './durable.js';

export interface EventRow {
  eventId: string;
  keyId: number;
  count: number;
  occurredAt: string | null;
  enqueuedAt: string | null;
  attributes: string | null; // JSON text
}

/**
 * Inserts events, skipping eventIds already in the ledger (in any partition, and
 * repeats within `rows`), in one durable statement. The SQL function
 * insert_usage_events (migration 20261201000000_partitioned_ledger) takes the
 * event-writer lock before its insert takes its snapshot, so the eventId check sees
 * every event committed before; rows get their seq in the order given, and the
 * horizon moves up to the highest. The lock is held only for this one statement,
 * so no write waits on another's round trips. Serial writes are what PostgreSQL
 * does fastest on one table anyway (one insert a job), and they let a batch take a
 * range of seq without reading, locking or updating the events. Returns the key id
 * of each inserted row.
 */
export async function insertEvents(db: Sql, rows: EventRow[]): Promise<number[]> {
  if (rows.length === 0) return [];
  const inserted = await db.$queryRaw<{ key_id: number }[]>`
    WITH durable AS (${DURABLE_COMMIT})
    SELECT inserted_key_id AS key_id FROM insert_usage_events(
      ${rows.map((r) => r.eventId)}::text[], ${rows.map((r) => r.keyId)}::int[],
      ${rows.map((r) => r.count)}::int[], ${rows.map((r) => r.occurredAt)}::timestamptz[],
      ${rows.map((r) => r.enqueuedAt)}::timestamptz[], ${rows.map((r) => r.attributes)}::jsonb[]),
      (SELECT count(*) FROM durable) d`;
  return inserted.map((r) => r.key_id);
}

/** eventIds among these that the ledger already holds. */
export async function existingEventIds(db: Sql, eventIds: string[]): Promise<Set<string>> {
  if (eventIds.length === 0) return new Set();
  const rows = await db.$queryRaw<{ event_id: string }[]>`
    SELECT event_id FROM usage_event WHERE event_id = ANY(${eventIds}::text[])`;
  return new Set(rows.map((r) => r.event_id));
}

export type EventStatus = 'pending' | 'batched' | 'charged' | 'overage' | 'insufficient' | 'dead';

/** An event with its derived status and the batch that holds it. */
export interface EventWithStatus {
  keyId: number;
  seq: bigint;
  eventId: string;
  count: number;
  occurredAt: Date | null;
  enqueuedAt: Date | null;
  receivedAt: Date;
  attributes: unknown;
  batchId: bigint | null;
  status: EventStatus;
}

const EVENT_COLUMNS = Prisma.sql`key_id AS "keyId", seq, event_id AS "eventId", count,
  occurred_at AS "occurredAt", enqueued_at AS "enqueuedAt", received_at AS "receivedAt", attributes,
  batch_id AS "batchId", status`;

/** These events (by eventId) with their status. */
export async function eventsById(db: Sql, eventIds: string[]): Promise<EventWithStatus[]> {
  return db.$queryRaw<EventWithStatus[]>`
    SELECT ${EVENT_COLUMNS} FROM usage_event_status WHERE event_id = ANY(${eventIds}::text[])`;
}

/** A key's events in a range of seq, in order (a batch's events). */
export async function eventsInRange(
  db: Sql,
  keyId: number,
  from: bigint,
  to: bigint,
  limit: number,
): Promise<EventWithStatus[]> {
  return db.$queryRaw<EventWithStatus[]>`
    SELECT ${EVENT_COLUMNS} FROM usage_event_status
    WHERE key_id = ${keyId} AND seq BETWEEN ${from} AND ${to}
    ORDER BY seq LIMIT ${limit}`;
}

/** A key's events newest first, below `beforeSeq`, optionally of one status. */
export async function eventsOfKey(
  db: Sql,
  keyId: number,
  o: { beforeSeq?: bigint; status?: EventStatus; limit: number },
): Promise<EventWithStatus[]> {
  return db.$queryRaw<EventWithStatus[]>`
    SELECT ${EVENT_COLUMNS} FROM usage_event_status
    WHERE key_id = ${keyId}
      ${o.beforeSeq === undefined ? Prisma.empty : Prisma.sql`AND seq < ${o.beforeSeq}`}
      ${o.status === undefined ? Prisma.empty : Prisma.sql`AND status = ${o.status}`}
    ORDER BY seq DESC LIMIT ${o.limit}`;
}
