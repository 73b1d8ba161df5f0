// Reconciliation's reads and findings: what the ledger did to a key between two
// snapshots (batches charged, batches whose deduction is unknown, orders seen), and
// the drift rows (balance_drift) that report the difference.
import type { BalanceKey } from './balance-snapshots.js';
import type { Sql } from './db.js';

export interface BatchEvidence {
  id: string;
  outTradeNo: string;
  count: number;
  status: string;
}

export interface Between {
  /** Batches charged in (from, to]: Douyin deducted them. */
  charged: BatchEvidence[];
  /** Batches sent and not settled, or settled dead in (from, to]: deducted or not, unknown. */
  uncertain: BatchEvidence[];
  /** Orders of the key received in (from, to] (a purchase may explain a positive drift). */
  orders: { orderId: string; orderEvent: number; receivedAt: string }[];
}

/** What the ledger knows happened to the key between two snapshot times. */
export async function ledgerBetween(db: Sql, k: BalanceKey, from: Date, to: Date): Promise<Between> {
  const batches = await db.$queryRaw<(BatchEvidence & { settled: boolean })[]>`
    SELECT b.id::text AS id, b.out_trade_no AS "outTradeNo", b.count, b.status::text AS status,
           b.status <> 'open' AS settled
    FROM charge_batch b JOIN meter_key m ON m.id = b.key_id
    WHERE m.open_id = ${k.openId} AND m.service_id = ${k.serviceId} AND m.service_mode_id = ${k.serviceModeId}
      AND m.is_test_env = ${k.isTestEnv}
      AND ((b.status IN ('charged', 'dead') AND b.finished_at > ${from} AND b.finished_at <= ${to})
           OR (b.status = 'open' AND b.first_attempt_at IS NOT NULL))
    ORDER BY b.id`;
  const orders = await db.$queryRaw<{ orderId: string; orderEvent: number; receivedAt: Date }[]>`
    SELECT order_id AS "orderId", order_event AS "orderEvent", received_at AS "receivedAt" FROM douyin_order
    WHERE open_id = ${k.openId} AND service_id = ${k.serviceId} AND service_mode_id = ${k.serviceModeId}
      AND received_at > ${from} AND received_at <= ${to}
    ORDER BY received_at`;
  const strip = ({ settled: _, ...b }: BatchEvidence & { settled: boolean }) => b;
  return {
    charged: batches.filter((b) => b.status === 'charged').map(strip),
    uncertain: batches.filter((b) => b.status !== 'charged').map(strip),
    orders: orders.map((o) => ({ ...o, receivedAt: o.receivedAt.toISOString() })),
  };
}

export interface DriftRow extends BalanceKey {
  checkedAt: Date;
  previousRemaining: number;
  previousAsOf: Date;
  charged: number;
  uncertain: number;
  expected: number;
  actual: number;
  drift: number;
  evidence: Between;
}

export async function recordDrift(db: Sql, d: DriftRow): Promise<void> {
  await db.$executeRaw`
    INSERT INTO balance_drift (open_id, service_id, service_mode_id, is_test_env, checked_at, previous_remaining,
                               previous_as_of, charged, uncertain, expected, actual, drift, evidence)
    VALUES (${d.openId}, ${d.serviceId}, ${d.serviceModeId}, ${d.isTestEnv}, ${d.checkedAt}, ${d.previousRemaining},
            ${d.previousAsOf}, ${d.charged}, ${d.uncertain}, ${d.expected}, ${d.actual}, ${d.drift},
            ${JSON.stringify(d.evidence)}::jsonb)`;
}

/** Each key's latest finding, where it found drift (newest first). */
export async function keysWithDrift(db: Sql, limit: number): Promise<DriftRow[]> {
  return db.$queryRaw<DriftRow[]>`
    SELECT * FROM (
      SELECT DISTINCT ON (open_id, service_id, service_mode_id, is_test_env)
             open_id AS "openId", service_id AS "serviceId", service_mode_id AS "serviceModeId",
             is_test_env AS "isTestEnv", checked_at AS "checkedAt", previous_remaining AS "previousRemaining",
             previous_as_of AS "previousAsOf", charged, uncertain, expected, actual, drift, evidence
      FROM balance_drift
      ORDER BY open_id, service_id, service_mode_id, is_test_env, checked_at DESC, id DESC) latest
    WHERE drift <> 0 ORDER BY "checkedAt" DESC LIMIT ${limit}`;
}

/** Keys with a batch settled since `since` (reconciliation's "active since the last run"). */
export async function keysActiveSince(db: Sql, since: Date, limit: number): Promise<BalanceKey[]> {
  return db.$queryRaw<BalanceKey[]>`
    SELECT m.open_id AS "openId", m.service_id AS "serviceId", m.service_mode_id AS "serviceModeId",
           m.is_test_env AS "isTestEnv"
    FROM meter_key m
    WHERE EXISTS (SELECT 1 FROM charge_batch b WHERE b.key_id = m.id AND b.finished_at > ${since})
    ORDER BY m.id LIMIT ${limit}`;
}

/** A user's keys. */
export async function keysOfUser(db: Sql, openId: string): Promise<BalanceKey[]> {
  return db.$queryRaw<BalanceKey[]>`
    SELECT open_id AS "openId", service_id AS "serviceId", service_mode_id AS "serviceModeId",
           is_test_env AS "isTestEnv"
    FROM meter_key WHERE open_id = ${openId} ORDER BY id`;
}
