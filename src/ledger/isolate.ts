// Row isolation for the ledger's bulk writes: one bulk statement is all or nothing,
// so one row PostgreSQL refuses (text it cannot store, a count out of range...)
// would fail its whole job, retried forever. On such a data error the rows are
// bisected until each refused row stands alone; the others are written. Rows that
// are all fine cost nothing extra: one statement, as before.

/** The SQLSTATE of a database error, through Prisma's driver adapter or straight from pg. */
export function sqlState(err: unknown): string | undefined {
  const e = err as { code?: unknown; meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } };
  const code = e?.meta?.driverAdapterError?.cause?.originalCode ?? e?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * True for an error caused by the values written (class 22, data exception; class
 * 23, integrity constraint), which retrying cannot fix. A unique violation (23505)
 * is left out: the ledger's inserts skip duplicates, so one can only be a race that
 * a retry resolves.
 */
export function isDataError(err: unknown): boolean {
  const s = sqlState(err);
  return s !== undefined && (s.startsWith('22') || s.startsWith('23')) && s !== '23505';
}

/** "SQLSTATE message (detail)", for the record of a refused row. */
export function describeDbError(err: unknown): string {
  const cause = (err as { meta?: { driverAdapterError?: { cause?: Record<string, unknown> } } })?.meta
    ?.driverAdapterError?.cause;
  const message = String(cause?.originalMessage ?? (err as Error)?.message ?? err);
  const d = cause?.detail ?? (err as { detail?: unknown })?.detail; // Prisma's adapter, or pg itself
  const detail = typeof d === 'string' ? ` (${d})` : '';
  return `${sqlState(err) ?? 'error'} ${message}${detail}`;
}

export interface Refused<T> {
  item: T;
  reason: string;
}

/**
 * Writes the items with `write` (one statement, all or nothing). On a data error it
 * splits them in halves and writes each, down to single rows: a single row that is
 * refused is returned with its reason. Any other error (connection, timeout) is
 * thrown, and the caller's job is retried as before. `write` must be idempotent
 * (the ledger's inserts skip rows already there).
 */
export async function writeIsolating<T, R>(
  items: T[],
  write: (part: T[]) => Promise<R[]>,
): Promise<{ written: R[]; refused: Refused<T>[] }> {
  const written: R[] = [];
  const refused: Refused<T>[] = [];
  const run = async (part: T[]): Promise<void> => {
    try {
      written.push(...(await write(part)));
    } catch (err) {
      if (!isDataError(err)) throw err;
      if (part.length === 1) {
        refused.push({ item: part[0]!, reason: describeDbError(err) });
        return;
      }
      const mid = Math.ceil(part.length / 2);
      await run(part.slice(0, mid));
      await run(part.slice(mid));
    }
  };
  if (items.length > 0) await run(items);
  return { written, refused };
}
