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

/**
 * Clears the first-attempt stamp of a batch its run formed and never let out (the
 * run stopped for a pause), so Douyin's idempotency window is counted from the real
 * first send. Only under the run's lease, and only for a batch with no attempt and
 * no call_attempt row: a batch that was ever sent keeps its stamp.
 */
export async function unstampUnsentBatch(db: Sql, lease: KeyLease, batchId: bigint): Promise<boolean> {
  const n = await db.$executeRaw`
    UPDATE charge_batch b SET first_attempt_at = NULL
    WHERE b.id = ${batchId} AND b.status = 'open' AND b.attempts = 0
      AND NOT EXISTS (SELECT 1 FROM call_attempt a WHERE a.batch_id = b.id)
      AND EXISTS (SELECT 1 FROM key_lease l WHERE l.key_id = ${lease.keyId} AND l.token = ${String(lease.token)}::bigint
                  AND l.until > now())`;
  return n > 0;
}
