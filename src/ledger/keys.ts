// Batching keys (meter_key): a user's use of one service specification in one
// environment, with the key's own event sequence and its pending counters.
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

/** Whether the key has events in no batch yet. */
export async function keyHasPendingEvents(db: Sql, keyId: number): Promise<boolean> {
  const rows = await db.$queryRaw<{ pending: boolean }[]>`
    SELECT EXISTS (SELECT 1 FROM usage_event e WHERE e.key_id = k.id AND e.seq > k.batched_seq) AS pending
    FROM meter_key k WHERE k.id = ${keyId}`;
  return rows[0]?.pending ?? false;
}

/**
 * Keys with events in no batch for longer than `olderThanMs`, or with open batches
 * untouched that long. One index probe a key for the first: the keys are read in id
 * order from `afterKeyId`, `limit` at a time, so a large deployment is swept in turns.
 */
export async function keysNeedingCharge(
  db: Sql,
  olderThanMs: number,
  limit: number,
  afterKeyId = 0,
): Promise<{ keyIds: number[]; lastKeyId: number | null }> {
  const [scanned, open] = await Promise.all([
    db.$queryRaw<{ id: number; stale: boolean }[]>`
      SELECT k.id, EXISTS (
        SELECT 1 FROM usage_event e
        WHERE e.key_id = k.id AND e.seq > k.batched_seq
          AND e.received_at < now() - make_interval(secs => ${olderThanMs / 1000})
      ) AS stale
      FROM meter_key k WHERE k.id > ${afterKeyId} ORDER BY k.id LIMIT ${limit}`,
    db.$queryRaw<{ key_id: number }[]>`
      SELECT DISTINCT key_id FROM charge_batch
      WHERE status = 'open' AND updated_at < now() - make_interval(secs => ${olderThanMs / 1000})
      LIMIT ${limit}`,
  ]);
  const keyIds = new Set([...scanned.filter((k) => k.stale).map((k) => k.id), ...open.map((r) => r.key_id)]);
  return { keyIds: [...keyIds], lastKeyId: scanned.length < limit ? null : scanned.at(-1)!.id };
}
