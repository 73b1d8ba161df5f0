// The last check before a batch's call, in one durable statement: this run still
// holds the key's lease, the batch (and a derived batch's parent) is still open,
// and the batch's first-attempt time is stamped before the call leaves, so
// Douyin's idempotency-window clock can never start later than the real first call.
import type { Sql } from './db.js';
import { DURABLE_COMMIT } from './durable.js';
import { type KeyLease, renewedLease } from './key-lease.js';

export type Claim = { kind: 'claimed'; firstAttemptAt: Date } | { kind: 'lease_lost' } | { kind: 'not_open' };

export async function claimBatchForSend(db: Sql, lease: KeyLease, batchId: bigint): Promise<Claim> {
  const rows = await db.$queryRaw<{ leased: boolean; first_attempt_at: Date | null }[]>`
    WITH durable AS (${DURABLE_COMMIT}),
    l AS (${renewedLease(lease)}),
    b AS (
      UPDATE charge_batch b SET first_attempt_at = COALESCE(b.first_attempt_at, now())
      WHERE b.id = ${batchId} AND b.status = 'open' AND EXISTS (SELECT 1 FROM l)
        AND (b.parent_id IS NULL
             OR EXISTS (SELECT 1 FROM charge_batch p WHERE p.id = b.parent_id AND p.status = 'open'))
      RETURNING b.first_attempt_at
    )
    SELECT EXISTS (SELECT 1 FROM l) AS leased, (SELECT first_attempt_at FROM b)
    FROM (SELECT count(*) FROM durable) d`;
  const r = rows[0]!;
  if (!r.leased) return { kind: 'lease_lost' };
  return r.first_attempt_at ? { kind: 'claimed', firstAttemptAt: r.first_attempt_at } : { kind: 'not_open' };
}
