// A user's balance of one service mode, as the meter knows it (docs: "Balances"):
// Douyin's remaining times at a moment (a snapshot from the order webhook or from
// GetUserServicePurchaseList), less the uses the meter charged after that moment
// and the uses it accepted and has not charged yet.
//   available = douyinRemaining − chargedSince − pendingUses
// Approximations err low: a batch settled after a read is subtracted even if Douyin
// had counted it already, and a dead batch (perhaps deducted) counts as charged.
// Douyin's order webhook does not set the balance (one order's snapshot, its
// meaning unconfirmed, delivered out of order); a newer order makes the next
// balance read the purchase list. In test mode Douyin answers 1 remaining whatever
// was bought, so a test-mode balance says little.
import {
  type BalanceKey,
  latestSnapshot,
  recordSnapshot,
  type Snapshot,
} from '../ledger/balance-snapshots.js';
import type { Sql } from '../ledger/db.js';
import { keyIdOf } from '../ledger/keys.js';
import { newestOrderAt } from '../ledger/orders.js';
import { chargedUsesSince, eventsByStatus } from '../ledger/reports.js';

/** The purchase-list read the balance needs (DouyinMarketClient has it). */
export interface PurchaseListReader {
  getUserServicePurchaseList(
    input: { openId: string; serviceId: string; isTestEnv?: boolean },
    opts?: { signal?: AbortSignal },
  ): Promise<{ purchaseInfoList: object[] }>;
}

export interface Balance extends BalanceKey {
  /** Douyin's remaining times at asOf; null when the meter has never known them. */
  douyinRemaining: number | null;
  asOf: Date | null;
  source: Snapshot['source'] | null;
  /** Uses of batches settled charged (or dead: perhaps deducted) after asOf; test mode: none (Douyin deducts nothing there). */
  chargedSince: number;
  /** Uses in the ledger not charged yet (pending or in an open batch). */
  pendingUses: number;
  /** null when douyinRemaining is. */
  available: number | null;
  /** Why the snapshot could not be refreshed, when a read was due and failed (the older one is used). */
  refreshError?: string;
}

export interface BalanceOptions {
  /** A snapshot older than this is read again first (METER_BALANCE_MAX_AGE_SEC). */
  maxAgeSec: number;
  /** Never read Douyin: answer from what the meter has. */
  cached?: boolean;
  /** Douyin's purchase list; without it the balance is the cached one. */
  douyin?: PurchaseListReader;
  /** Time a purchase-list read may take, ms. Default 3000. */
  readTimeoutMs?: number;
}

export async function balanceOf(db: Sql, key: BalanceKey, o: BalanceOptions): Promise<Balance> {
  let snapshot = await latestSnapshot(db, key);
  let refreshError: string | undefined;
  // Stale: too old, or an order of the key (Douyin's webhook) arrived after it.
  const orderAt = snapshot ? await newestOrderAt(db, key) : undefined;
  const stale =
    !snapshot ||
    Date.now() - snapshot.asOf.getTime() > o.maxAgeSec * 1000 ||
    (orderAt !== undefined && orderAt > snapshot.asOf);
  if (stale && !o.cached && o.douyin) {
    try {
      snapshot = await readPurchaseList(db, key, o.douyin, o.readTimeoutMs ?? 3_000);
    } catch (err) {
      refreshError = (err as Error).message;
    }
  }
  const keyRow = await keyIdOf(db, key);
  const statuses = keyRow === undefined ? undefined : await eventsByStatus(db, [keyRow]);
  const pendingUses = (statuses?.pending?.uses ?? 0) + (statuses?.batched?.uses ?? 0);
  const chargedSince =
    snapshot && keyRow !== undefined && !key.isTestEnv
      ? await chargedUsesSince(db, keyRow, snapshot.asOf)
      : 0;
  const douyinRemaining = snapshot?.remaining ?? null;
  return {
    ...key,
    douyinRemaining,
    asOf: snapshot?.asOf ?? null,
    source: snapshot?.source ?? null,
    chargedSince,
    pendingUses,
    available: douyinRemaining === null ? null : douyinRemaining - chargedSince - pendingUses,
    ...(refreshError !== undefined ? { refreshError } : {}),
  };
}

/**
 * Reads the user's purchases of the service and records the service mode's
 * remaining times as a snapshot. Its time is taken before the request leaves, so
 * a batch settled while the read was out counts as charged after it (the low side).
 */
export async function readPurchaseList(
  db: Sql,
  key: BalanceKey,
  douyin: PurchaseListReader,
  timeoutMs: number,
  source: 'purchase_list' | 'reconcile' = 'purchase_list',
): Promise<Snapshot> {
  // The database's clock, the one batches are settled by.
  const asOf = (await db.$queryRaw<{ now: Date }[]>`SELECT now() AS now`)[0]!.now;
  const r = await douyin.getUserServicePurchaseList(
    { openId: key.openId, serviceId: key.serviceId, isTestEnv: key.isTestEnv },
    { signal: AbortSignal.timeout(timeoutMs) },
  );
  const remaining = (r.purchaseInfoList as { serviceModeId?: string; remainServiceTimes?: number }[])
    .filter((p) => p.serviceModeId === key.serviceModeId)
    .reduce((sum, p) => sum + (p.remainServiceTimes ?? 0), 0);
  const snapshot: Snapshot = { remaining, asOf, source };
  await recordSnapshot(db, key, snapshot);
  return snapshot;
}
