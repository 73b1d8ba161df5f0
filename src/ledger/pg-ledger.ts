// The ledger's statements over a plain `pg` pool, for the worker's hot paths. The
// same tagged-template interface as Prisma's $queryRaw / $executeRaw (Prisma.sql
// builds the statement text and its values), so every statement in src/ledger/
// runs on either. Why: Prisma's raw queries cost 0.84 ms of CPU each against
// 0.20 ms for the same statement through `pg` on the machines here (measured), and
// a charge run made five of them: on two cores shared with PostgreSQL that capped
// charging at under 200 runs/s. Prisma keeps the schema, the migrations and the
// operators' reads.
import pg from 'pg';
import { Prisma } from '../generated/prisma/client.js';
import type { Sql } from './db.js';

/** What a ledger statement runs on, with transactions: the Prisma client or a pg pool. */
export interface Ledger extends Sql {
  $transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T>;
}

export interface PgLedger extends Ledger {
  $disconnect(): Promise<void>;
}

// int8 as BigInt, as Prisma returns it (ids and seqs are BIGINT).
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20
      ? (v: string) => BigInt(v)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

function over(q: { query: pg.Pool['query'] }): Sql {
  const run = (strings: TemplateStringsArray, values: unknown[]) => {
    const s = Prisma.sql(strings, ...values);
    return q.query(s.text, s.values as unknown[]);
  };
  return {
    $queryRaw: (async (strings: TemplateStringsArray, ...values: unknown[]) =>
      (await run(strings, values)).rows) as Sql['$queryRaw'],
    $executeRaw: (async (strings: TemplateStringsArray, ...values: unknown[]) =>
      (await run(strings, values)).rowCount ?? 0) as Sql['$executeRaw'],
  };
}

export function createPgLedger(
  databaseUrl: string,
  options: {
    poolSize?: number;
    /**
     * The server cancels a statement running longer (default: none). Charging sets
     * it: one of its statements serves many runs at once, and a stuck one must fail
     * them (to be retried) rather than hold them past their leases.
     */
    statementTimeoutMs?: number;
  } = {},
): PgLedger {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // A connection whose peer vanished is found in seconds, not after the kernel's retries.
    keepAlive: true,
    ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
    types,
  });
  // An idle client's error (PostgreSQL restarted) must not crash the process; the
  // next query reconnects.
  pool.on('error', () => {});
  return {
    ...over(pool),
    async $transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await work(over(client as unknown as { query: pg.Pool['query'] }));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        // A connection that cannot even roll back is discarded, not reused.
        await client.query('ROLLBACK').catch((e: Error) => (broken = e));
        throw err;
      } finally {
        client.release(broken);
      }
    },
    $disconnect: () => pool.end(),
  };
}
