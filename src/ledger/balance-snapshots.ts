// What Douyin said a user had left of a service mode, and when (balance_snapshot):
// from an order webhook's snapshot or from GetUserServicePurchaseList. Appended,
// never updated; the newest one is what the balance starts from.
import type { Sql } from './db.js';

export interface BalanceKey {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  isTestEnv: boolean;
}

export interface Snapshot {
  remaining: number;
  asOf: Date;
  /** reconcile: a purchase-list read made by reconciliation, the base of its next check. */
  source: 'webhook' | 'purchase_list' | 'reconcile';
}

export async function recordSnapshot(db: Sql, k: BalanceKey, s: Snapshot): Promise<void> {
  await db.$executeRaw`
    INSERT INTO balance_snapshot (open_id, service_id, service_mode_id, is_test_env, remaining, as_of, source)
    VALUES (${k.openId}, ${k.serviceId}, ${k.serviceModeId}, ${k.isTestEnv}, ${s.remaining}, ${s.asOf}, ${s.source})`;
}

/** The key's newest snapshot (of that source, if given), if any. */
export async function latestSnapshot(
  db: Sql,
  k: BalanceKey,
  source?: Snapshot['source'],
): Promise<Snapshot | undefined> {
  const rows = await db.$queryRaw<Snapshot[]>`
    SELECT remaining, as_of AS "asOf", source FROM balance_snapshot
    WHERE open_id = ${k.openId} AND service_id = ${k.serviceId} AND service_mode_id = ${k.serviceModeId}
      AND is_test_env = ${k.isTestEnv} AND (${source ?? null}::text IS NULL OR source = ${source ?? null}::text)
    ORDER BY as_of DESC, id DESC LIMIT 1`;
  return rows[0];
}
