// A charge run's lease on its key, with a fencing token. BullMQ's job lock keeps
// one run per key, but a run that lost that lock (a long stall, a Redis restart)
// does not know it and keeps going. The lease lives in PostgreSQL beside the
// batches: a run takes it (the token grows by one), and every step that sends or
// settles shows its token (renewing the lease) in the same transaction as the
// change. A run whose token is no longer the key's can change nothing.
import type { PrismaClient } from '../generated/prisma/client.js';
import { Prisma } from '../generated/prisma/client.js';
import { durably } from './durable.js';
import { BATCH_COLUMNS, type BatchRow, type Sql } from './sql.js';

export interface KeyLease {
  keyId: number;
  token: bigint;
  /** How long each renewal holds the lease. */
  leaseMs: number;
}

export type LeasedWork =
  | { kind: 'busy' }
  | { kind: 'leased'; lease: KeyLease; batch?: BatchRow; pending: boolean };

/**
 * Takes the key's lease unless another run holds an unexpired one, and reads what
 * the key has to charge (its newest open batch, whether events are pending) in the
 * same statement. Durable: two runs must never hold the same token.
 */
export async function takeKeyLease(
  db: PrismaClient,
  keyId: number,
  owner: string,
  leaseMs: number,
): Promise<LeasedWork> {
  const rows = await durably(
    db,
    (tx) => tx.$queryRaw<(BatchRow & { token: bigint | null; pending: boolean })[]>`
      WITH l AS (
        UPDATE meter_key SET lease_token = lease_token + 1, lease_owner = ${owner},
               lease_until = now() + make_interval(secs => ${leaseMs / 1000})
        WHERE id = ${keyId} AND (lease_until IS NULL OR lease_until < now())
        RETURNING lease_token
      )
      SELECT (SELECT lease_token FROM l) AS token, o.*,
             EXISTS (SELECT 1 FROM pending_event WHERE key_id = ${keyId}) AS pending
      FROM (SELECT 1) one LEFT JOIN LATERAL (
        SELECT ${Prisma.raw(BATCH_COLUMNS)}
        FROM charge_batch b JOIN meter_key k ON k.id = b.key_id
        WHERE b.key_id = ${keyId} AND b.status = 'open'
        ORDER BY b.id DESC LIMIT 1) o ON true`,
  );
  const { token, pending, ...batch } = rows[0]!;
  if (token === null) return { kind: 'busy' };
  const lease = { keyId, token, leaseMs };
  return batch.id === null ? { kind: 'leased', lease, pending } : { kind: 'leased', lease, batch, pending };
}

/**
 * Renews the lease if this run still holds it, and locks the key's row until the
 * transaction ends, so no other run can take the lease in between. Call it first
 * in the transaction of every change the lease guards.
 */
export async function holdsKeyLease(tx: Sql, lease: KeyLease): Promise<boolean> {
  const n = await tx.$executeRaw`
    UPDATE meter_key SET lease_until = now() + make_interval(secs => ${lease.leaseMs / 1000})
    WHERE id = ${lease.keyId} AND lease_token = ${lease.token}`;
  return n > 0;
}

/** Renews the lease on its own, durably; false when this run no longer holds it. */
export async function renewKeyLease(db: PrismaClient, lease: KeyLease): Promise<boolean> {
  return durably(db, (tx) => holdsKeyLease(tx, lease));
}

/** Ends the run's lease so the key's next run need not wait for it to expire. */
export async function releaseKeyLease(db: Sql, lease: KeyLease): Promise<void> {
  await db.$executeRaw`
    UPDATE meter_key SET lease_until = NULL, lease_owner = NULL
    WHERE id = ${lease.keyId} AND lease_token = ${lease.token}`;
}
