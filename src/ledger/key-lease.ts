// A charge run's lease on its key (key_lease), with a fencing token. BullMQ's job
// lock keeps one run per key, but a run that lost that lock (a long stall, a Redis
// restart) does not know it and keeps going. The lease lives in PostgreSQL beside
// the batches: a run takes it (the token grows by one), and every step that forms,
// sends or settles shows its token (renewing the lease) in the same transaction as
// the change. A run whose token is no longer the key's can change nothing. The
// lease has a table of its own so that charging never holds a key's row except
// while forming a batch.
import { Prisma } from '../generated/prisma/client.js';
import { BATCH_COLUMNS, type BatchRow } from './batches.js';
import type { Sql } from './db.js';
import { DURABLE_COMMIT, durably } from './durable.js';
import { type PendingAges, pendingAges, toPending } from './keys.js';
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
      /** Absent when no event of the key is pending. */
      pending?: PendingAges;
    };

/** Keys may appear once per statement: two rows of one key would take (or form) it twice. */
export function assertDistinctKeys(keyIds: readonly number[]): void {
  if (new Set(keyIds).size !== keyIds.length) throw new Error('a key appears twice in one ledger statement');
}

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
  return (await takeKeyLeases(db, [keyId], owner, leaseMs))[0]!;
}

/**
 * takeKeyLease for several distinct keys in one durable statement (lease rows
 * taken in key order, as in every statement over many keys: see
 * LEASES_LOCKED_IN_KEY_ORDER); a result per key, in order.
 */
export async function takeKeyLeases(
  db: Sql,
  keyIds: readonly number[],
  owner: string,
  leaseMs: number,
): Promise<LeasedWork[]> {
  assertDistinctKeys(keyIds);
  const rows = await db.$queryRaw<
    (BatchRow & {
      key_id: number;
      token: bigint | null;
      pending_oldest: number | null;
      pending_newest: number | null;
    })[]
  >`
    WITH durable AS (${DURABLE_COMMIT}),
    r AS (SELECT unnest(${[...keyIds]}::int[]) AS key_id),
    l AS (
      INSERT INTO key_lease (key_id, token, owner, until)
      SELECT key_id, 1, ${owner}, now() + make_interval(secs => ${leaseMs / 1000}) FROM r ORDER BY key_id
      ON CONFLICT (key_id) DO UPDATE
        SET token = key_lease.token + 1, owner = EXCLUDED.owner, until = EXCLUDED.until
        WHERE key_lease.until IS NULL OR key_lease.until < now()
      RETURNING key_id, token
    )
    SELECT r.key_id, l.token, o.*, ${pendingAges(Prisma.raw('r.key_id'))}
    FROM (SELECT count(*) FROM durable) d CROSS JOIN r LEFT JOIN l ON l.key_id = r.key_id
    LEFT JOIN LATERAL (
      SELECT ${BATCH_COLUMNS}
      FROM charge_batch b JOIN meter_key k ON k.id = b.key_id
      WHERE b.key_id = r.key_id AND b.status = 'open'
      ORDER BY b.id DESC LIMIT 1) o ON true`;
  const byKey = new Map(rows.map((r) => [r.key_id, r]));
  return keyIds.map((keyId): LeasedWork => {
    const { key_id: _, token, pending_oldest, pending_newest, ...batch } = byKey.get(keyId)!;
    if (token === null) return { kind: 'busy' };
    const lease = { keyId, token, leaseMs };
    const pending = toPending({ pending_oldest, pending_newest });
    return batch.id === null ? { kind: 'leased', lease, pending } : { kind: 'leased', lease, batch, pending };
  });
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
 * holds it, for statements that check the lease and make their change in one go.
 */
export function renewedLease(lease: KeyLease): Prisma.Sql {
  return Prisma.sql`
    UPDATE key_lease SET until = now() + make_interval(secs => ${lease.leaseMs / 1000})
    WHERE key_id = ${lease.keyId} AND token = ${lease.token}
    RETURNING 1 AS held`;
}

/**
 * The body of a CTE that locks the key_lease rows of a statement's keys (the
 * key_id column of its relation `r`) in key order. A statement over many keys
 * makes it its first step (\`WHERE (SELECT count(*) FROM locked) >= 0\` in its
 * lease update): every such statement, and takeKeyLeases, then takes lease rows
 * in one order, and two never wait on each other in a cycle.
 */
export const LEASES_LOCKED_IN_KEY_ORDER = Prisma.sql`
  SELECT kl.key_id FROM key_lease kl WHERE kl.key_id IN (SELECT key_id FROM r)
  ORDER BY kl.key_id FOR NO KEY UPDATE OF kl`;

/** Renews the lease on its own, durably; false when this run no longer holds it. */
export async function renewKeyLease(db: Ledger, lease: KeyLease): Promise<boolean> {
  return durably(db, (tx) => holdsKeyLease(tx, lease));
}

/** Ends the run's lease so the key's next run need not wait for it to expire. */
export async function releaseKeyLease(db: Sql, lease: KeyLease): Promise<void> {
  await releaseKeyLeases(db, [lease]);
}

/** releaseKeyLease for several runs' leases in one statement (a stale token changes nothing). */
export async function releaseKeyLeases(db: Sql, leases: readonly KeyLease[]): Promise<void> {
  await db.$executeRaw`
    WITH r AS (
      SELECT * FROM unnest(${leases.map((x) => x.keyId)}::int[], ${leases.map((x) => String(x.token))}::text[]::bigint[])
        AS r(key_id, token)
    ), locked AS MATERIALIZED (${LEASES_LOCKED_IN_KEY_ORDER})
    UPDATE key_lease l SET until = NULL, owner = NULL
    FROM r WHERE (SELECT count(*) FROM locked) >= 0 AND l.key_id = r.key_id AND l.token = r.token`;
}
