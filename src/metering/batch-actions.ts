// An operator's action (replay, resolve) applied to batches one at a time, each in
// its own durable transaction: a batch refused (with its reason) never stops the
// others. Shared by replay.ts and resolve.ts.
import type { Sql } from '../ledger/db.js';
import { durably } from '../ledger/durable.js';
import type { LockedBatch } from '../ledger/operator-batches.js';
import type { Ledger } from '../ledger/pg-ledger.js';

export interface BatchActionResult {
  done: string[];
  skipped: { id: string; reason: string }[];
  /** The keys of the batches acted on. */
  keys: Set<number>;
}

/** Runs `act` on each batch; `act` returns the batch it changed, or why it did not. */
export async function actOnBatches(
  db: Ledger,
  ids: bigint[],
  act: (tx: Sql, id: bigint) => Promise<LockedBatch | string>,
): Promise<BatchActionResult> {
  const result: BatchActionResult = { done: [], skipped: [], keys: new Set() };
  for (const id of ids) {
    const outcome = await durably(db, (tx) => act(tx, id));
    if (typeof outcome === 'string') result.skipped.push({ id: String(id), reason: outcome });
    else {
      result.done.push(String(id));
      result.keys.add(outcome.keyId);
    }
  }
  return result;
}
