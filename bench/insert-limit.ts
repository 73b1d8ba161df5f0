// The ledger's physical limit, measured in the same run as a benchmark: PostgreSQL
// alone inserting the run's rows into a copy of usage_event (same columns, keys and
// indexes), one statement per chunk (EVENTS_PER_JOB rows, as a worker's job), from
// one client. bench/bench.ts and bench/scale.ts both report their end-to-end speed
// as a ratio to it, because machines of one kind differ by 1.5x.
import pg from 'pg';

export interface InsertLimitRow {
  keyId: number;
  eventId: string;
  count: number;
}

/** Rows/s of PostgreSQL inserting `chunks` into a throwaway copy of usage_event (dropped after). */
export async function measureInsertLimit(
  databaseUrl: string,
  chunks: Iterable<InsertLimitRow[]>,
): Promise<number> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    await c.query('CREATE TABLE bench_insert_limit (LIKE usage_event INCLUDING ALL)');
    // Deduplicate the way the table allows: by eventId when it is unique on its own
    // (the unpartitioned ledger), else on whatever unique key the copy has.
    const conflict = (await uniqueEventId(c))
      ? 'ON CONFLICT (event_id) DO NOTHING'
      : 'ON CONFLICT DO NOTHING';
    let rows = 0;
    const t = performance.now();
    for (const part of chunks) {
      await c.query(
        `INSERT INTO bench_insert_limit (key_id, event_id, count, enqueued_at)
         SELECT * FROM unnest($1::int[], $2::text[], $3::int[], $4::timestamptz[])
         ${conflict}`,
        [
          part.map((e) => e.keyId),
          part.map((e) => e.eventId),
          part.map((e) => e.count),
          part.map(() => new Date()),
        ],
      );
      rows += part.length;
    }
    const perSec = Math.round(rows / ((performance.now() - t) / 1000));
    await c.query('DROP TABLE bench_insert_limit');
    return perSec;
  } finally {
    await c.end();
  }
}

async function uniqueEventId(c: pg.Client): Promise<boolean> {
  const r = await c.query(
    `SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = 'bench_insert_limit'::regclass AND i.indisunique AND i.indnatts = 1
       AND a.attname = 'event_id'`,
  );
  return r.rowCount! > 0;
}
