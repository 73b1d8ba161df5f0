// balance.low (docs/notifications.md): a key's available balance crossing below an
// endpoint's threshold. balance_low_state remembers, per endpoint and key, that it
// fired, under which threshold; the state and the notification are written in one
// statement, so a crossing is notified once however many checks race. The state is
// cleared (the alert re-armed) when a check finds the balance back at the
// threshold; a state of another threshold (the operator changed it, perhaps while
// a check was under way) counts as none.
import type { Sql } from './db.js';

/** Records the key's available balance; returns how many balance.low notifications that wrote. */
export async function recordBalanceLevel(
  db: Sql,
  keyId: number,
  available: number,
  data: Record<string, unknown>,
): Promise<number> {
  const rows = await db.$queryRaw<{ n: number }[]>`
    WITH e AS (
      SELECT id, low_balance_threshold AS threshold FROM webhook_endpoint
      WHERE enabled AND 'balance.low' = ANY(event_types)
    ), cleared AS (
      DELETE FROM balance_low_state s USING e
      WHERE s.endpoint_id = e.id AND s.key_id = ${keyId}::int AND ${available}::int >= e.threshold
    ), fired AS (
      INSERT INTO balance_low_state (endpoint_id, key_id, threshold, available)
      SELECT e.id, ${keyId}::int, e.threshold, ${available}::int FROM e WHERE ${available}::int < e.threshold
      ON CONFLICT (endpoint_id, key_id) DO UPDATE
        SET threshold = excluded.threshold, available = excluded.available, since = now()
        WHERE balance_low_state.threshold <> excluded.threshold
      RETURNING endpoint_id
    ), n AS (
      INSERT INTO notification (type, endpoint_id, data)
      SELECT 'balance.low', f.endpoint_id,
             ${JSON.stringify(data)}::jsonb || jsonb_build_object('available', ${available}::int, 'threshold', e.threshold)
      FROM fired f JOIN e ON e.id = f.endpoint_id
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM n`;
  return rows[0]!.n;
}

/** Whether an enabled endpoint wants balance.low (no check is worth making otherwise). */
export async function balanceLowWanted(db: Sql): Promise<boolean> {
  const rows = await db.$queryRaw<{ wanted: boolean }[]>`SELECT notification_wanted('balance.low') AS wanted`;
  return rows[0]!.wanted;
}
