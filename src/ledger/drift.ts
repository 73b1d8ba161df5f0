// Reconciliation's reads and findings: what the ledger did to a key between two
// reconciliation reads (batches charged, batches whose deduction is unknown, orders
// seen), and the findings (balance_drift) that report the difference.

import { Prisma } from '../generated/prisma/client.js';
import type { BalanceKey } from './balance-snapshots.js';
import type { Sql } from './db.js';
import type { Ledger } from './pg-ledger.js';

export interface BatchEvidence {
  id: string;
  outTradeNo: string;
  count: number;
  status: string;
}

export interface Between {
  /** Batches charged in (from, to]: Douyin deducted them (the first EVIDENCE_SHOWN). */
  charged: BatchEvidence[];
  /** Batches whose deduction in (from, to] is unknown: sent and not settled, dead, or charged late. */
  uncertain: BatchEvidence[];
  /** Orders of the key received in (from, to] (a purchase may explain a positive drift). */
  orders: { orderId: string; orderEvent: number; receivedAt: string }[];
}

/** Evidence lists are cut to this many entries each (their totals are kept whole). */
export const EVIDENCE_SHOWN = 50;

/**
 * What the ledger knows happened to the key between two reconciliation reads. Both
 * reads were made under the key's lease, so no charge was in flight at either: a
 * batch settled charged in between was deducted in between, unless it was first
 * sent before `from` (a late success, a replay, a resolve), which is uncertain.
 */
export async function ledgerBetween(
  db: Sql,
  k: BalanceKey,
  from: Date,
  to: Date,
): Promise<Between & { chargedUses: number; uncertainUses: number }> {
  const batches = await db.$queryRaw<BatchEvidence[]>`
    SELECT b.id::text AS id, b.out_trade_no AS "outTradeNo", b.count,
           CASE WHEN b.status = 'charged' AND b.first_attempt_at <= ${from} THEN 'charged_late'
                ELSE b.status::text END AS status
    FROM charge_batch b JOIN meter_key m ON m.id = b.key_id
    WHERE m.open_id = ${k.openId} AND m.service_id = ${k.serviceId} AND m.service_mode_id = ${k.serviceModeId}
      AND m.is_test_env = ${k.isTestEnv}
      AND ((b.status IN ('charged', 'dead') AND b.finished_at > ${from} AND b.finished_at <= ${to})
           OR (b.status = 'open' AND b.first_attempt_at <= ${to}))
    ORDER BY b.id`;
  const orders = await db.$queryRaw<{ orderId: string; orderEvent: number; receivedAt: Date }[]>`
    SELECT order_id AS "orderId", order_event AS "orderEvent", received_at AS "receivedAt" FROM douyin_order
    WHERE open_id = ${k.openId} AND service_id = ${k.serviceId} AND service_mode_id = ${k.serviceModeId}
      AND received_at > ${from} AND received_at <= ${to}
    ORDER BY received_at`;
  const charged = batches.filter((b) => b.status === 'charged');
  const uncertain = batches.filter((b) => b.status !== 'charged');
  const uses = (list: BatchEvidence[]) => list.reduce((n, b) => n + b.count, 0);
  return {
    charged: charged.slice(0, EVIDENCE_SHOWN),
    uncertain: uncertain.slice(0, EVIDENCE_SHOWN),
    orders: orders.slice(0, EVIDENCE_SHOWN).map((o) => ({ ...o, receivedAt: o.receivedAt.toISOString() })),
    chargedUses: uses(charged),
    uncertainUses: uses(uncertain),
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

/** Records a finding as the key's latest, its drift added to the key's cumulative drift; returns that. */
export async function recordDrift(db: Ledger, d: DriftRow): Promise<number> {
  return db.$transaction(async (tx) => {
    const prev = await tx.$queryRaw<{ cumulative: number }[]>`
      UPDATE balance_drift SET latest = false
      WHERE open_id = ${d.openId} AND service_id = ${d.serviceId} AND service_mode_id = ${d.serviceModeId}
        AND is_test_env = ${d.isTestEnv} AND latest
      RETURNING cumulative_drift AS cumulative`;
    const cumulative = (prev[0]?.cumulative ?? 0) + d.drift;
    await tx.$executeRaw`
      INSERT INTO balance_drift (open_id, service_id, service_mode_id, is_test_env, checked_at, previous_remaining,
                                 previous_as_of, charged, uncertain, expected, actual, drift, cumulative_drift,
                                 latest, evidence)
      VALUES (${d.openId}, ${d.serviceId}, ${d.serviceModeId}, ${d.isTestEnv}, ${d.checkedAt}, ${d.previousRemaining},
              ${d.previousAsOf}, ${d.charged}, ${d.uncertain}, ${d.expected}, ${d.actual}, ${d.drift}, ${cumulative},
              true, ${JSON.stringify(d.evidence)}::jsonb)`;
    return cumulative;
  });
}

const DRIFT_COLUMNS =
  Prisma.raw(`open_id AS "openId", service_id AS "serviceId", service_mode_id AS "serviceModeId",
  is_test_env AS "isTestEnv", checked_at AS "checkedAt", previous_remaining AS "previousRemaining",
  previous_as_of AS "previousAsOf", charged, uncertain, expected, actual, drift,
  cumulative_drift AS "cumulativeDrift", evidence`);

/** The keys whose drift since their first check is not 0, latest check first. */
export async function keysWithDrift(
  db: Sql,
  limit: number,
): Promise<(DriftRow & { cumulativeDrift: number })[]> {
  return db.$queryRaw`
    SELECT ${DRIFT_COLUMNS} FROM balance_drift
    WHERE latest AND cumulative_drift <> 0 ORDER BY checked_at DESC LIMIT ${limit}`;
}

/** How many keys keysWithDrift would list. */
export async function countKeysWithDrift(db: Sql): Promise<number> {
  const rows = await db.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS n FROM balance_drift WHERE latest AND cumulative_drift <> 0`;
  return rows[0]!.n;
}

/** Keys (not test mode) with a batch settled since `since`: reconciliation's keys to check. */
export async function keysActiveSince(db: Sql, since: Date, limit: number): Promise<BalanceKey[]> {
  return db.$queryRaw<BalanceKey[]>`
    SELECT m.open_id AS "openId", m.service_id AS "serviceId", m.service_mode_id AS "serviceModeId",
           m.is_test_env AS "isTestEnv"
    FROM meter_key m
    WHERE m.id IN (SELECT DISTINCT key_id FROM charge_batch WHERE finished_at > ${since}) AND NOT m.is_test_env
    ORDER BY m.id LIMIT ${limit}`;
}

/** A user's keys. */
export async function keysOfUser(db: Sql, openId: string): Promise<BalanceKey[]> {
  return db.$queryRaw<BalanceKey[]>`
    SELECT open_id AS "openId", service_id AS "serviceId", service_mode_id AS "serviceModeId",
           is_test_env AS "isTestEnv"
    FROM meter_key WHERE open_id = ${openId} ORDER BY id`;
}
