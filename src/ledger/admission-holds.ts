// Admission control's holds (admission_hold): one per admitted event, counted
// until the event is in the ledger (its uses are then the balance's pending uses)
// or the hold expires (a safety net for an event that never arrives).
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

/**
 * Uses held for the key's admitted events not in the ledger yet (expired holds are
 * removed), and which of `eventIds` are held already (a retry: admitted before).
 */
export async function heldUses(
  tx: Sql,
  k: BalanceKey,
  eventIds: string[],
): Promise<{ uses: number; alreadyHeld: Set<string> }> {
  await tx.$executeRaw`
    DELETE FROM admission_hold
    WHERE open_id = ${k.openId} AND service_id = ${k.serviceId} AND service_mode_id = ${k.serviceModeId}
      AND is_test_env = ${k.isTestEnv} AND until <= now()`;
  const rows = await tx.$queryRaw<{ event_id: string; uses: number; in_ledger: boolean }[]>`
    SELECT h.event_id, h.uses, EXISTS (SELECT 1 FROM usage_event e WHERE e.event_id = h.event_id) AS in_ledger
    FROM admission_hold h
    WHERE h.open_id = ${k.openId} AND h.service_id = ${k.serviceId} AND h.service_mode_id = ${k.serviceModeId}
      AND h.is_test_env = ${k.isTestEnv}`;
  const asked = new Set(eventIds);
  return {
    uses: rows.filter((r) => !r.in_ledger).reduce((n, r) => n + r.uses, 0),
    alreadyHeld: new Set(rows.filter((r) => asked.has(r.event_id)).map((r) => r.event_id)),
  };
}

export async function addHolds(
  tx: Sql,
  k: BalanceKey,
  events: { eventId: string; count: number }[],
  holdSec: number,
): Promise<void> {
  if (events.length === 0) return;
  await tx.$executeRaw`
    INSERT INTO admission_hold (event_id, open_id, service_id, service_mode_id, is_test_env, uses, until)
    SELECT event_id, ${k.openId}, ${k.serviceId}, ${k.serviceModeId}, ${k.isTestEnv}, uses,
           now() + make_interval(secs => ${holdSec})
    FROM unnest(${events.map((e) => e.eventId)}::text[], ${events.map((e) => e.count)}::int[]) AS i(event_id, uses)
    ON CONFLICT (event_id) DO NOTHING`;
}
