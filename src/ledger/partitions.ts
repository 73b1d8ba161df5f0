// The monthly partitions of usage_event (migration 20261201000000_partitioned_ledger):
// made ahead by the worker, at start and daily, so an insert always finds its month
// and the ingest path never makes one; listed for the prune and the operators.
import type { ClientBase } from 'pg';

/** Months made ahead of the current one: a worker stopped for this long still finds its month. */
export const PARTITION_MONTHS_AHEAD = 3;

/** Makes the partitions of this month (UTC) and the next PARTITION_MONTHS_AHEAD, if missing. */
export async function ensurePartitionsAhead(
  c: ClientBase,
  ahead = PARTITION_MONTHS_AHEAD,
): Promise<string[]> {
  const r = await c.query<{ name: string }>('SELECT usage_event_partitions_ahead($1::int) AS name', [ahead]);
  return r.rows.map((row) => row.name);
}

export interface EventPartition {
  name: string;
  /** Inclusive lower bound of received_at. */
  from: Date;
  /** Exclusive upper bound. */
  to: Date;
  /** PostgreSQL's estimate (reltuples): -1 before the first ANALYZE. */
  estimatedRows: number;
  /** A DETACH ... CONCURRENTLY was interrupted: the prune finishes it. */
  detachPending: boolean;
}

/** Every partition attached to usage_event, oldest first. */
export async function listPartitions(c: ClientBase): Promise<EventPartition[]> {
  // The bounds read back as timestamps by PostgreSQL itself (their text follows the session's time zone).
  const r = await c.query<{ name: string; lo: Date; hi: Date; rows: number; pending: boolean }>(`
    SELECT c.relname AS name,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS lo,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS hi,
           c.reltuples::float8 AS rows, i.inhdetachpending AS pending
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'usage_event'::regclass`);
  return r.rows
    .map((row) => ({
      name: row.name,
      from: row.lo,
      to: row.hi,
      estimatedRows: row.rows,
      detachPending: row.pending,
    }))
    .sort((a, b) => a.from.getTime() - b.from.getTime());
}
