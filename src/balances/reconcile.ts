// Reconciliation (docs/balances-and-orders.md): for each key, Douyin's remaining
// times now against what the ledger expects from the previous snapshot:
//   expected = previous.remaining − uses charged between the two snapshots
//   drift    = actual − expected
// Batches whose deduction is unknown (sent and not settled, or dead) and orders
// seen in between are reported with it: they may explain a drift. Drift is never
// corrected: the new snapshot is recorded, and balances start from it.
import type { BalanceKey } from '../ledger/balance-snapshots.js';
import { latestSnapshot } from '../ledger/balance-snapshots.js';
import type { Sql } from '../ledger/db.js';
import { type DriftRow, ledgerBetween, recordDrift } from '../ledger/drift.js';
import { type PurchaseListReader, readPurchaseList } from './balance.js';

export type Reconciled =
  | { key: BalanceKey; status: 'checked'; drift: DriftRow }
  /** No snapshot before: this read is the first one, the next check compares with it. */
  | { key: BalanceKey; status: 'baseline'; remaining: number }
  /** Test mode: Douyin answers 1 remaining whatever was bought; nothing to compare. */
  | { key: BalanceKey; status: 'skipped_test_env' }
  | { key: BalanceKey; status: 'failed'; error: string };

export async function reconcileKey(
  db: Sql,
  douyin: PurchaseListReader,
  key: BalanceKey,
  readTimeoutMs = 3_000,
): Promise<Reconciled> {
  if (key.isTestEnv) return { key, status: 'skipped_test_env' };
  const previous = await latestSnapshot(db, key);
  let now: Awaited<ReturnType<typeof readPurchaseList>>;
  try {
    now = await readPurchaseList(db, key, douyin, readTimeoutMs);
  } catch (err) {
    return { key, status: 'failed', error: (err as Error).message };
  }
  if (!previous) return { key, status: 'baseline', remaining: now.remaining };
  const between = await ledgerBetween(db, key, previous.asOf, now.asOf);
  const sum = (b: { count: number }[]) => b.reduce((n, x) => n + x.count, 0);
  const charged = sum(between.charged);
  const expected = previous.remaining - charged;
  const drift: DriftRow = {
    ...key,
    checkedAt: now.asOf,
    previousRemaining: previous.remaining,
    previousAsOf: previous.asOf,
    charged,
    uncertain: sum(between.uncertain),
    expected,
    actual: now.remaining,
    drift: now.remaining - expected,
    evidence: between,
  };
  await recordDrift(db, drift);
  return { key, status: 'checked', drift };
}

/** Reconciles the keys one after another (each read takes a slot of the reads' share). */
export async function reconcileKeys(
  db: Sql,
  douyin: PurchaseListReader,
  keys: BalanceKey[],
): Promise<Reconciled[]> {
  const out: Reconciled[] = [];
  for (const key of keys) out.push(await reconcileKey(db, douyin, key));
  return out;
}
