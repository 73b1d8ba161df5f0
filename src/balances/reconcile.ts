// Reconciliation (docs/balances-and-orders.md): for each key, Douyin's remaining
// times now against what the ledger expects from reconciliation's previous read:
//   expected = previous.remaining − uses charged between the two reads
//   drift    = actual − expected
// Each read is made under the key's lease (the charger's; src/ledger/key-lease.ts),
// so no charge of the key is in flight while Douyin is asked: a batch settled
// between the reads was deducted between them. Batches whose deduction is unknown
// (sent and not settled, dead, charged late) and orders seen in between are
// reported with it: they may explain a drift. The previous read is reconciliation's
// own (source 'reconcile'), never a balance's, which would absorb a drift before it
// is seen. Drift is never corrected.
import type { BalanceKey } from '../ledger/balance-snapshots.js';
import { latestSnapshot } from '../ledger/balance-snapshots.js';
import { type DriftRow, ledgerBetween, recordDrift } from '../ledger/drift.js';
import { releaseKeyLease, takeKeyLease } from '../ledger/key-lease.js';
import { keyIdOf } from '../ledger/keys.js';
import type { Ledger } from '../ledger/pg-ledger.js';
import { type PurchaseListReader, readPurchaseList } from './balance.js';

export type Reconciled =
  | { key: BalanceKey; status: 'checked'; drift: DriftRow & { cumulativeDrift: number } }
  /** No read before: this one is the base the next check compares with. */
  | { key: BalanceKey; status: 'baseline'; remaining: number }
  /** Test mode: Douyin answers 1 remaining whatever was bought; nothing to compare. */
  | { key: BalanceKey; status: 'skipped_test_env' }
  /** A charge run holds the key: checked on a later run. */
  | { key: BalanceKey; status: 'busy' }
  | { key: BalanceKey; status: 'failed'; error: string };

export interface ReconcileOptions {
  /** Who holds the key's lease while it is read (a worker id, 'cli'). */
  owner: string;
  /** Time a purchase-list read may take, ms. Default 3000. */
  readTimeoutMs?: number;
}

/** The lease a reconciliation read holds: longer than the read and its statements. */
const LEASE_MS = 30_000;

export async function reconcileKey(
  db: Ledger,
  douyin: PurchaseListReader,
  key: BalanceKey,
  o: ReconcileOptions,
): Promise<Reconciled> {
  if (key.isTestEnv) return { key, status: 'skipped_test_env' };
  const keyId = await keyIdOf(db, key);
  const lease = keyId !== undefined ? await takeKeyLease(db, keyId, o.owner, LEASE_MS) : undefined;
  if (lease?.kind === 'busy') return { key, status: 'busy' };
  try {
    const previous = await latestSnapshot(db, key, 'reconcile');
    let now: Awaited<ReturnType<typeof readPurchaseList>>;
    try {
      now = await readPurchaseList(db, key, douyin, o.readTimeoutMs ?? 3_000, 'reconcile');
    } catch (err) {
      return { key, status: 'failed', error: (err as Error).message };
    }
    if (!previous) return { key, status: 'baseline', remaining: now.remaining };
    const { chargedUses, uncertainUses, ...evidence } = await ledgerBetween(db, key, previous.asOf, now.asOf);
    const expected = previous.remaining - chargedUses;
    const drift: DriftRow = {
      ...key,
      checkedAt: now.asOf,
      previousRemaining: previous.remaining,
      previousAsOf: previous.asOf,
      charged: chargedUses,
      uncertain: uncertainUses,
      expected,
      actual: now.remaining,
      drift: now.remaining - expected,
      evidence,
    };
    const cumulativeDrift = await recordDrift(db, drift);
    return { key, status: 'checked', drift: { ...drift, cumulativeDrift } };
  } finally {
    if (lease?.kind === 'leased') await releaseKeyLease(db, lease.lease);
  }
}

/**
 * Reconciles the keys one after another (each read takes a slot of the reads'
 * share), until `shouldStop` says so (a shutdown, a run out of time).
 */
export async function reconcileKeys(
  db: Ledger,
  douyin: PurchaseListReader,
  keys: BalanceKey[],
  o: ReconcileOptions & { shouldStop?: () => boolean },
): Promise<Reconciled[]> {
  const out: Reconciled[] = [];
  for (const key of keys) {
    if (o.shouldStop?.()) break;
    out.push(await reconcileKey(db, douyin, key, o));
  }
  return out;
}
