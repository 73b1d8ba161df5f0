// Admission control's holds (admission_hold): uses admitted at the door before
// their events reach the ledger, each counted until it expires.
import type { BalanceKey } from './balance-snapshots.js';
import type { Sql } from './db.js';

/**
 * Takes the key's admission lock for this transaction: two admissions of one key
 * never decide at the same time, so they can never both spend the same uses.
 */
export async function lockKeyAdmission(tx: Sql, k: BalanceKey): Promise<void> {
  const name = `admission\n${k.openId}\n${k.serviceId}\n${k.serviceModeId}\n${k.isTestEnv}`;
  await tx.$queryRaw`SELECT pg_advisory_xact_lock(hashtextextended(${name}, 0)) IS NULL AS locked`;
}

/** Uses held for the key and not expired (the expired ones are removed). */
export async function heldUses(tx: Sql, k: BalanceKey): Promise<number> {
  await tx.$executeRaw`
    DELETE FROM admission_hold
    WHERE open_id = ${k.openId} AND service_id = ${k.serviceId} AND service_mode_id = ${k.serviceModeId}
      AND is_test_env = ${k.isTestEnv} AND until <= now()`;
  const rows = await tx.$queryRaw<{ uses: number }[]>`
    SELECT coalesce(sum(uses), 0)::int AS uses FROM admission_hold
    WHERE open_id = ${k.openId} AND service_id = ${k.serviceId} AND service_mode_id = ${k.serviceModeId}
      AND is_test_env = ${k.isTestEnv}`;
  return rows[0]!.uses;
}

export async function addHold(tx: Sql, k: BalanceKey, uses: number, holdSec: number): Promise<void> {
  await tx.$executeRaw`
    INSERT INTO admission_hold (open_id, service_id, service_mode_id, is_test_env, uses, until)
    VALUES (${k.openId}, ${k.serviceId}, ${k.serviceModeId}, ${k.isTestEnv}, ${uses},
            now() + make_interval(secs => ${holdSec}))`;
}
