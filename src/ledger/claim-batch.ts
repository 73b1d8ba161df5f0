// The last check before a batch's call, in one durable transaction: this run
// still holds the key's lease, the batch (and a derived batch's parent) is still
// open, and the batch's first-attempt time is stamped before the call leaves, so
// Douyin's idempotency-window clock can never start later than the real first call.
import type { PrismaClient } from '../generated/prisma/client.js';
import { durably } from './durable.js';
import { holdsKeyLease, type KeyLease } from './key-lease.js';
import { type BatchRow, formBatch } from './sql.js';

export type Claim = { kind: 'claimed'; firstAttemptAt: Date } | { kind: 'lease_lost' } | { kind: 'not_open' };

export async function claimBatchForSend(db: PrismaClient, lease: KeyLease, batchId: bigint): Promise<Claim> {
  return durably(db, async (tx): Promise<Claim> => {
    if (!(await holdsKeyLease(tx, lease))) return { kind: 'lease_lost' };
    const rows = await tx.$queryRaw<{ first_attempt_at: Date }[]>`
      UPDATE charge_batch b SET first_attempt_at = COALESCE(b.first_attempt_at, now())
      WHERE b.id = ${batchId} AND b.status = 'open'
        AND (b.parent_id IS NULL
             OR EXISTS (SELECT 1 FROM charge_batch p WHERE p.id = b.parent_id AND p.status = 'open'))
      RETURNING b.first_attempt_at`;
    return rows[0] ? { kind: 'claimed', firstAttemptAt: rows[0].first_attempt_at } : { kind: 'not_open' };
  });
}

/** Forms the key's next batch (see formBatch) if this run still holds the key's lease. Durable. */
export async function formLeasedBatch(
  db: PrismaClient,
  lease: KeyLease,
  p: Omit<Parameters<typeof formBatch>[1], 'keyId'>,
): Promise<{ kind: 'lease_lost' } | { kind: 'formed'; batch: BatchRow | undefined }> {
  return durably(db, async (tx) => {
    if (!(await holdsKeyLease(tx, lease))) return { kind: 'lease_lost' as const };
    return { kind: 'formed' as const, batch: await formBatch(tx, { ...p, keyId: lease.keyId }) };
  });
}
