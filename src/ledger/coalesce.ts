// Group commit for statements that many concurrent callers make one key at a time
// (a worker's charge runs). While a statement of one kind is in flight, the calls
// that arrive are gathered, and sent as one statement when it returns: N runs cost
// one round trip and one commit flush instead of N, and a lone call waits for
// nothing. DataLoader gathers the calls and hands each caller its own result;
// this file decides when a gathered batch leaves, and keeps a bad call from
// failing the calls it was gathered with.
import DataLoader from 'dataloader';
import { sqlState } from './isolate.js';

export interface CoalesceOptions<T> {
  /** At most this many calls in one statement. Default 256. */
  maxBatch?: number;
  /**
   * Calls with the same key never share a statement (two rows of one key would act
   * on it twice): a later one goes in a statement after the first's.
   */
  keyOf?: (item: T) => unknown;
}

/**
 * A function taking one item that runs `run` (many items, a result per item in
 * order) over the items of concurrent calls. When a statement of several items is
 * refused for an item's values (see isItemError), the items are run again in
 * halves, so one bad item fails only its own call; any other error fails every
 * call of the statement, as it would have failed each call alone.
 */
export function coalesce<T, R>(
  run: (items: readonly T[]) => Promise<R[]>,
  o: CoalesceOptions<T> = {},
): (item: T) => Promise<R> {
  // One statement of the kind at a time: a batch scheduled while one is scheduled or
  // in flight waits its turn (and keeps gathering calls until then).
  let busy = false;
  const waiting: (() => void)[] = [];
  const loader = new DataLoader<T, R, T>(
    async (items) => {
      try {
        return await runInRounds(items, run, o.keyOf);
      } finally {
        const next = waiting.shift();
        if (next) next();
        else busy = false;
      }
    },
    {
      cache: false,
      maxBatchSize: o.maxBatch ?? 256,
      batchScheduleFn: (dispatch) => {
        if (busy) waiting.push(dispatch);
        else {
          busy = true;
          // After the I/O callbacks of this loop turn, so the calls they make go together.
          setImmediate(dispatch);
        }
      },
    },
  );
  return (item) => loader.load(item);
}

/** Runs the items in rounds of distinct keys, one after the other. */
async function runInRounds<T, R>(
  items: readonly T[],
  run: (items: readonly T[]) => Promise<R[]>,
  keyOf: ((item: T) => unknown) | undefined,
): Promise<(R | Error)[]> {
  const results: (R | Error)[] = new Array(items.length);
  let rest = items.map((item, index) => ({ item, index }));
  while (rest.length > 0) {
    const seen = new Set<unknown>();
    const round: typeof rest = [];
    const later: typeof rest = [];
    for (const x of rest) {
      const k = keyOf ? keyOf(x.item) : x.index;
      if (seen.has(k)) later.push(x);
      else {
        seen.add(k);
        round.push(x);
      }
    }
    const out = await runOrIsolate(
      round.map((x) => x.item),
      run,
    );
    round.forEach((x, i) => {
      results[x.index] = out[i]!;
    });
    rest = later;
  }
  return results;
}

/**
 * Runs the items in one statement; on a data error (which rolled the statement
 * back: nothing of it happened) in halves, down to the item that caused it, as
 * writeIsolating does for the ledger's bulk inserts.
 */
async function runOrIsolate<T, R>(
  items: readonly T[],
  run: (items: readonly T[]) => Promise<R[]>,
): Promise<(R | Error)[]> {
  try {
    return await run(items);
  } catch (err) {
    if (items.length === 1 || !isItemError(err)) return items.map(() => asError(err));
    const mid = Math.ceil(items.length / 2);
    return [
      ...(await runOrIsolate(items.slice(0, mid), run)),
      ...(await runOrIsolate(items.slice(mid), run)),
    ];
  }
}

/**
 * An error caused by an item's values (class 22, data exception; class 23,
 * integrity constraint): PostgreSQL refused the statement, so it was rolled back.
 * Anything else (a lost connection, which may have come after the commit; a
 * deadlock or timeout, which would only recur item by item) fails every call.
 */
function isItemError(err: unknown): boolean {
  const s = sqlState(err);
  return s !== undefined && (s.startsWith('22') || s.startsWith('23'));
}

const asError = (e: unknown) => (e instanceof Error ? e : new Error(String(e)));
