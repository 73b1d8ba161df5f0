// Batching keys (meter_key): a user's use of one service specification in one
// environment, with the key's own event sequence and its pending counters.
import { Prisma } from '../generated/prisma/client.js';
import type { Sql } from './db.js';

export interface KeyFields {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  isTestEnv: boolean;
}

/** Inserts missing batching keys and returns the id of every given key. */
export async function upsertKeys(db: Sql, keys: KeyFields[]): Promise<Map<string, number>> {
  const o = keys.map((k) => k.openId);
  const s = keys.map((k) => k.serviceId);
  const m = keys.map((k) => k.serviceModeId);
  const t = keys.map((k) => k.isTestEnv);
  // Sorted, so concurrent inserts take row locks in one order (no deadlocks).
  await db.$executeRaw`
    INSERT INTO meter_key (open_id, service_id, service_mode_id, is_test_env)
    SELECT * FROM unnest(${o}::text[], ${s}::text[], ${m}::text[], ${t}::bool[]) ORDER BY 1, 2, 3, 4
    ON CONFLICT DO NOTHING`;
  const rows = await db.$queryRaw<(KeyFields & { id: number })[]>`
    SELECT k.id, k.open_id AS "openId", k.service_id AS "serviceId", k.service_mode_id AS "serviceModeId",
           k.is_test_env AS "isTestEnv"
    FROM meter_key k
    JOIN unnest(${o}::text[], ${s}::text[], ${m}::text[], ${t}::bool[]) AS i(open_id, service_id, service_mode_id, is_test_env)
      USING (open_id, service_id, service_mode_id, is_test_env)`;
  return new Map(rows.map((r) => [keyString(r), r.id]));
}

export function keyString(k: KeyFields): string {
  // Ids are printable ASCII (the event schema), so a newline cannot be part of one.
  return `${k.openId}\n${k.serviceId}\n${k.serviceModeId}\n${k.isTestEnv}`;
}

/** The id of the key with these fields, if it exists. */
export async function keyIdOf(db: Sql, k: KeyFields): Promise<number | undefined> {
  const rows = await db.$queryRaw<{ id: number }[]>`
    SELECT id FROM meter_key WHERE open_id = ${k.openId} AND service_id = ${k.serviceId}
      AND service_mode_id = ${k.serviceModeId} AND is_test_env = ${k.isTestEnv}`;
  return rows[0]?.id;
}

/** The fields of the key with this id, if there is one. */
export async function keyFieldsOf(db: Sql, keyId: number): Promise<KeyFields | undefined> {
  const rows = await db.$queryRaw<KeyFields[]>`
    SELECT open_id AS "openId", service_id AS "serviceId", service_mode_id AS "serviceModeId",
           is_test_env AS "isTestEnv"
    FROM meter_key WHERE id = ${keyId}`;
  return rows[0];
}

/** Whether the key has events in no batch yet. */
export async function keyHasPendingEvents(db: Sql, keyId: number): Promise<boolean> {
  return (await keysHavePendingEvents(db, [keyId]))[0]!;
}

/** keyHasPendingEvents for several keys in one read; a result per key, in order. */
export async function keysHavePendingEvents(db: Sql, keyIds: readonly number[]): Promise<boolean[]> {
  const rows = await db.$queryRaw<{ key_id: number; pending: boolean }[]>`
    SELECT r.key_id, EXISTS (SELECT 1 FROM usage_event e JOIN meter_key k ON k.id = r.key_id
                             WHERE e.key_id = r.key_id AND e.seq > k.batched_seq) AS pending
    FROM unnest(${[...keyIds]}::int[]) AS r(key_id)`;
  const pending = new Map(rows.map((r) => [r.key_id, r.pending]));
  return keyIds.map((k) => pending.get(k)!);
}

/**
 * Keys with events in no batch for longer than `olderThanMs`, or with open batches
 * untouched that long. Two ways to find the first: the events that arrived in the
 * last `recentMs` before that age (a BRIN range of received_at: a lost trigger is
 * found within a pass or two), and a walk of all keys in id order from
 * `afterKeyId`, `limit` at a time (one index probe a key), so that older ones are
 * found too, in turns, on a large deployment.
 */
export async function keysNeedingCharge(
  db: Sql,
  o: { olderThanMs: number; recentMs: number; limit: number; afterKeyId?: number },
): Promise<{ keyIds: number[]; lastKeyId: number | null }> {
  const stale = Prisma.sql`now() - make_interval(secs => ${o.olderThanMs / 1000})`;
  const [recent, scanned, open] = await Promise.all([
    db.$queryRaw<{ key_id: number }[]>`
      SELECT r.key_id FROM (
        SELECT DISTINCT key_id FROM usage_event
        WHERE received_at < ${stale}
          AND received_at >= ${stale} - make_interval(secs => ${o.recentMs / 1000})) r
      JOIN meter_key k ON k.id = r.key_id
      WHERE EXISTS (SELECT 1 FROM usage_event e WHERE e.key_id = k.id AND e.seq > k.batched_seq)
      LIMIT ${o.limit}`,
    db.$queryRaw<{ id: number; stale: boolean }[]>`
      SELECT k.id, EXISTS (
        SELECT 1 FROM usage_event e
        WHERE e.key_id = k.id AND e.seq > k.batched_seq AND e.received_at < ${stale}
      ) AS stale
      FROM meter_key k WHERE k.id > ${o.afterKeyId ?? 0} ORDER BY k.id LIMIT ${o.limit}`,
    db.$queryRaw<{ key_id: number }[]>`
      SELECT key_id FROM charge_batch
      WHERE status = 'open' AND updated_at < ${stale}
      ORDER BY updated_at LIMIT ${o.limit}`,
  ]);
  const keyIds = new Set([
    ...recent.map((r) => r.key_id),
    ...scanned.filter((k) => k.stale).map((k) => k.id),
    ...open.map((r) => r.key_id),
  ]);
  return { keyIds: [...keyIds], lastKeyId: scanned.length < o.limit ? null : scanned.at(-1)!.id };
}

/** What a key has to charge, read without its lease (see probeKeys). */
export interface KeyWork {
  openBatch: boolean;
  pending?: PendingAges;
}

/** How long ago (database clock) the key's oldest and newest events in no batch arrived. */
export interface PendingAges {
  oldestAgeMs: number;
  newestAgeMs: number;
}

// The ages of the key (column `keyId`)'s oldest and newest pending events, as
// columns pending_oldest and pending_newest.
export const pendingAges = (keyId: Prisma.Sql) => Prisma.sql`
  (SELECT extract(epoch FROM now() - e.received_at)::float8 * 1000 FROM usage_event e
   WHERE e.key_id = ${keyId} AND e.seq > (SELECT batched_seq FROM meter_key WHERE id = ${keyId})
   ORDER BY e.seq LIMIT 1) AS pending_oldest,
  (SELECT extract(epoch FROM now() - e.received_at)::float8 * 1000 FROM usage_event e
   WHERE e.key_id = ${keyId} AND e.seq > (SELECT batched_seq FROM meter_key WHERE id = ${keyId})
   ORDER BY e.seq DESC LIMIT 1) AS pending_newest`;

export const toPending = (r: { pending_oldest: number | null; pending_newest: number | null }) =>
  r.pending_oldest !== null && r.pending_newest !== null
    ? { oldestAgeMs: r.pending_oldest, newestAgeMs: r.pending_newest }
    : undefined;

/**
 * What each key has to charge (an open batch, pending events and their ages), read
 * without taking anything: a run that will only wait or find nothing to do writes
 * nothing. One read for all the keys; a result per key, in order.
 */
export async function probeKeys(db: Sql, keyIds: readonly number[]): Promise<KeyWork[]> {
  const rows = await db.$queryRaw<
    { key_id: number; open_batch: boolean; pending_oldest: number | null; pending_newest: number | null }[]
  >`
    SELECT r.key_id,
           EXISTS (SELECT 1 FROM charge_batch b WHERE b.key_id = r.key_id AND b.status = 'open') AS open_batch,
           ${pendingAges(Prisma.raw('r.key_id'))}
    FROM unnest(${[...keyIds]}::int[]) AS r(key_id)`;
  const byKey = new Map(rows.map((r) => [r.key_id, r]));
  return keyIds.map((k) => {
    const r = byKey.get(k)!;
    const pending = toPending(r);
    return pending ? { openBatch: r.open_batch, pending } : { openBatch: r.open_batch };
  });
}
