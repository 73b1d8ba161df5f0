// A charge run's lease on its key (key_lease), with a fencing token. BullMQ's job
// lock keeps one run per key, but a run that lost that lock (a long stall, a Redis
// restart) does not know it and keeps going. The lease lives in PostgreSQL beside
// the batches: a run takes it (the token grows by one), and every step that forms,
// sends or settles shows its token (renewing the lease) in the same transaction as
// the change. A run whose token is no longer the key's can change nothing. The
// lease has a table of its own so that charging never holds a key's row (which
// ingestion locks to raise the key's counters) except while forming a batch.
import { Prisma } from '../generated/prisma/client.js';
import { BATCH_COLUMNS, type BatchRow } from './batches.js';
import type { Sql } from './db.js';
import { DURABLE_COMMIT, durably } from './durable.js';
import type { Ledger } from './pg-ledger.js';

export interface KeyLease {
  keyId: number;
  token: bigint;
  /** How long each renewal holds the lease. */
  leaseMs: number;
}

export type LeasedWork =
  | { kind: 'busy' }
  | {
      kind: 'leased';
      lease: KeyLease;
      batch?: BatchRow;
      /** How long ago (database clock) the key's oldest and newest events in no batch arrived; absent when none. */
      pending?: { oldestAgeMs: number; newestAgeMs: number };
    };

/**
 * Takes the key's lease unless another run holds an unexpired one, and reads what
 * the key has to charge (its newest open batch, whether events are pending) in the
 * same statement. Durable: two runs must never hold the same token.
 */
export async function takeKeyLease(
  db: Sql,
  keyId: number,
  owner: string,
  leaseMs: number,
): Promise<LeasedWork> {
  const rows = await db.$queryRaw<
    (BatchRow & { token: bigint | null; pending_oldest: number | null; pending_newest: number | null })[]
  >`
    WITH durable AS (${DURABLE_COMMIT}),
    l AS (
      INSERT INTO key_lease (key_id, token, owner, until)
      VALUES (${keyId}, 1, ${owner}, now() + make_interval(secs => ${leaseMs / 1000}))
      ON CONFLICT (key_id) DO UPDATE
        SET token = key_lease.token + 1, owner = EXCLUDED.owner, until = EXCLUDED.until
        WHERE key_lease.until IS NULL OR key_lease.until < now()
      RETURNING token
    )
    SELECT (SELECT token FROM l) AS token, o.*,
           (SELECT extract(epoch FROM now() - e.received_at)::float8 * 1000 FROM usage_event e
            WHERE e.key_id = ${keyId} AND e.seq > (SELECT batched_seq FROM meter_key WHERE id = ${keyId})
            ORDER BY e.seq LIMIT 1) AS pending_oldest,
           (SELECT extract(epoch FROM now() - e.received_at)::float8 * 1000 FROM usage_event e
            WHERE e.key_id = ${keyId} AND e.seq > (SELECT batched_seq FROM meter_key WHERE id = ${keyId})
            ORDER BY e.seq DESC LIMIT 1) AS pending_newest
    FROM (SELECT count(*) FROM durable) d LEFT JOIN LATERAL (
      SELECT ${BATCH_COLUMNS}
      FROM charge_batch b JOIN meter_key k ON k.id = b.key_id
      WHERE b.key_id = ${keyId} AND b.status = 'open'
      ORDER BY b.id DESC LIMIT 1) o ON true`;
  const { token, pending_oldest, pending_newest, ...batch } = rows[0]!;
  if (token === null) return { kind: 'busy' };
  const lease = { keyId, token, leaseMs };
  const pending =
    pending_oldest !== null && pending_newest !== null
      ? { oldestAgeMs: pending_oldest, newestAgeMs: pending_newest }
      : undefined;
  return batch.id === null ? { kind: 'leased', lease, pending } : { kind: 'leased', lease, batch, pending };
}

/**
 * Renews the lease if this run still holds it, and locks the key's row until the
 * transaction ends, so no other run can take the lease in between. Call it first
 * in the transaction of every change the lease guards.
 */
export async function holdsKeyLease(tx: Sql, lease: KeyLease): Promise<boolean> {
  const n = await tx.$executeRaw`
    UPDATE key_lease SET until = now() + make_interval(secs => ${lease.leaseMs / 1000})
    WHERE key_id = ${lease.keyId} AND token = ${lease.token}`;
  return n > 0;
}

/**
 * The body of a CTE that renews the lease and yields one row if this run still
 * holds it, for statements that check the lease and make their change in one go
 * (no lease: always one row, for callers that hold the key otherwise, like tests).
 * With `release`, the statement is the run's last: it ends the lease instead
 * (the token stays the key's until another run takes a new one).
 */
export function renewedLease(lease: KeyLease | undefined, o: { release?: boolean } = {}): Prisma.Sql {
  if (!lease) return Prisma.sql`SELECT 1 AS held`;
  const until = o.release
    ? Prisma.sql`NULL`
    : Prisma.sql`now() + make_interval(secs => ${lease.leaseMs / 1000})`;
  return Prisma.sql`
    UPDATE key_lease SET until = ${until}, owner = ${o.release ? Prisma.sql`NULL` : Prisma.sql`owner`}
    WHERE key_id = ${lease.keyId} AND token = ${lease.token}
    RETURNING 1 AS held`;
}

/** Renews the lease on its own, durably; false when this run no longer holds it. */
export async function renewKeyLease(db: Ledger, lease: KeyLease): Promise<boolean> {
  return durably(db, (tx) => holdsKeyLease(tx, lease));
}

/** Ends the run's lease so the key's next run need not wait for it to expire. */
export async function releaseKeyLease(db: Sql, lease: KeyLease): Promise<void> {
  await db.$executeRaw`
    UPDATE key_lease SET until = NULL, owner = NULL WHERE key_id = ${lease.keyId} AND token = ${lease.token}`;
}
