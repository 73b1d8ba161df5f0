// The retention (docs/retention.md): drops whole months of usage_event older than
// METER_RETENTION_DAYS once nothing in them can still change, keeping their per-day
// totals in usage_daily, then deletes the settled batches, delivered notifications
// and rejected events of the same age. Run daily by the worker and by
// `npm run cli -- ledger prune [--dry-run]`; one at a time (a session lock).
//
// A month goes only when every one of its events is in a batch (none pending) and
// every batch holding one is final: charged or partial (an open batch waits for
// its answer; a dead or insufficient one for an operator, who may still replay or
// resolve it, and a late success may still settle it). Months go oldest first and the
// first one that must stay stops the run, so "events before events_since are gone"
// stays one boundary that readers (GET /v1/usage) can rely on.
import pg, { type ClientBase } from 'pg';
import { type EventPartition, listPartitions } from './partitions.js';

/** Douyin's idempotency window is a month: a batch's events must outlive it. */
export const MIN_RETENTION_DAYS = 35;

const PRUNE_LOCK = 726_003;
/** Rows deleted per statement: short transactions, no long lock on a hot table. */
const CHUNK = 1_000;
/** At most this many blocking batch ids are reported per month. */
const SHOWN_BATCHES = 20;

export interface PruneOptions {
  retentionDays: number;
  /** Report what would go; change nothing. */
  dryRun?: boolean;
  /** Who prunes, for the audit: `worker:<id>` or `cli:<user>`. */
  actor: string;
}

export interface MonthVerdict {
  partition: string;
  from: Date;
  to: Date;
  events: number;
  /** dropped | would drop | kept */
  action: 'dropped' | 'would drop' | 'kept';
  /** Why it was kept. */
  reason?: string;
  /** Events not in any batch yet. */
  pendingEvents?: number;
  /** Open, dead or insufficient batches holding its events (the first 20 ids). */
  unsettledBatches?: string[];
}

export interface PruneReport {
  /** Events received before this are past the retention. */
  cutoff: Date;
  /** Events received before this are gone (after this run). */
  eventsSince: Date | null;
  months: MonthVerdict[];
  batchesDeleted: number;
  notificationsDeleted: number;
  rejectedEventsDeleted: number;
  /** Set when another prune held the lock: nothing was done. */
  skipped?: string;
}

/** Runs the retention on `c` (a connection of its own: it takes a session lock). */
export async function pruneLedger(c: ClientBase, o: PruneOptions): Promise<PruneReport> {
  if (!(o.retentionDays >= MIN_RETENTION_DAYS)) {
    throw new RangeError(
      `retention must be at least ${MIN_RETENTION_DAYS} days (Douyin's idempotency window)`,
    );
  }
  const cutoff = (
    await c.query<{ t: Date }>(`SELECT now() - make_interval(days => $1::int) AS t`, [o.retentionDays])
  ).rows[0]!.t;
  const report: PruneReport = {
    cutoff,
    eventsSince: await eventsSince(c),
    months: [],
    batchesDeleted: 0,
    notificationsDeleted: 0,
    rejectedEventsDeleted: 0,
  };
  const locked = (await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [PRUNE_LOCK]))
    .rows[0]!.ok;
  if (!locked) return { ...report, skipped: 'another prune is running' };
  try {
    await c.query(`SET lock_timeout = '10s'`);
    let blocked = false;
    const partitions = await listPartitions(c);
    for (const p of partitions) {
      if (p.to > cutoff) break;
      if (blocked) {
        report.months.push({ ...verdictBase(p, 0), action: 'kept', reason: 'an older month is kept' });
        continue;
      }
      const v = await pruneMonth(c, p, report.eventsSince, o);
      report.months.push(v);
      if (v.action === 'kept') blocked = true;
      else if (!o.dryRun) report.eventsSince = p.to;
    }
    // Batches go only below both events_since and the oldest month still attached (a
    // month whose drop failed keeps its batches until it is gone).
    const kept = partitions.find(
      (p) => !report.months.some((m) => m.partition === p.name && m.action !== 'kept'),
    );
    const bound = (since: Date | null) => (since && kept && kept.from < since ? kept.from : since);
    if (o.dryRun) {
      const since = report.months.filter((m) => m.action === 'would drop').at(-1)?.to ?? report.eventsSince;
      const b = bound(since);
      report.batchesDeleted = b ? await countSettledBatchesBefore(c, b, cutoff) : 0;
      report.notificationsDeleted = await count(c, NOTIFICATIONS_DONE, cutoff);
      report.rejectedEventsDeleted = await count(c, REJECTED_OLD, cutoff);
      return report;
    }
    await dropDetachedLeftovers(c, report.eventsSince);
    const b = bound(await eventsSince(c));
    if (b) report.batchesDeleted = await deleteSettledBatchesBefore(c, b, cutoff);
    report.notificationsDeleted = await deleteInChunks(c, NOTIFICATIONS_DONE, 'notification', cutoff);
    report.rejectedEventsDeleted = await deleteInChunks(c, REJECTED_OLD, 'rejected_event', cutoff);
    if (report.months.some((m) => m.action === 'dropped') || report.batchesDeleted > 0) {
      await c.query(
        `INSERT INTO operator_audit (actor, action, target, details) VALUES ($1, 'ledger.prune', NULL, $2::jsonb)`,
        [o.actor, JSON.stringify(auditDetails(report))],
      );
    }
    return report;
  } finally {
    await c.query(`RESET lock_timeout`).catch(() => {});
    await c.query('SELECT pg_advisory_unlock($1)', [PRUNE_LOCK]).catch(() => {});
  }
}

async function eventsSince(c: ClientBase): Promise<Date | null> {
  const r = await c.query<{ t: Date | null }>('SELECT events_since AS t FROM ledger_retention WHERE id = 1');
  return r.rows[0]?.t ?? null;
}

function verdictBase(p: EventPartition, events: number) {
  return { partition: p.name, from: p.from, to: p.to, events };
}

/**
 * One month: checked, and when nothing in it can change, its days' totals written and
 * events_since moved past it (one transaction), then detached and dropped. A detach
 * that was interrupted is finished (the month was written before it began).
 */
async function pruneMonth(
  c: ClientBase,
  p: EventPartition,
  since: Date | null,
  o: PruneOptions,
): Promise<MonthVerdict> {
  const part = pg.escapeIdentifier(p.name);
  // Written and passed by an earlier run whose detach never began (its lock timed
  // out): only the drop is left. Writing its totals again would count nothing.
  const summarized = since !== null && since >= p.to;
  if (p.detachPending || summarized) {
    if (!o.dryRun) await finishDrop(c, part, p.detachPending);
    return { ...verdictBase(p, 0), action: o.dryRun ? 'would drop' : 'dropped' };
  }
  await c.query(o.dryRun ? 'BEGIN READ ONLY' : 'BEGIN');
  try {
    const check = await c.query<{ events: number; pending: number; unsettled: string[] | null }>(`
      SELECT (SELECT count(*)::int FROM ${part}) AS events,
             (SELECT count(*)::int FROM ${part} e JOIN meter_key k ON k.id = e.key_id
              WHERE e.seq > k.batched_seq) AS pending,
             (SELECT array_agg(id::text ORDER BY id) FROM (
                SELECT b.id FROM charge_batch b LEFT JOIN charge_batch parent ON parent.id = b.parent_id
                WHERE b.status IN ('open', 'dead', 'insufficient')
                  AND EXISTS (SELECT 1 FROM ${part} e
                              WHERE e.key_id = coalesce(parent.key_id, b.key_id)
                                AND e.seq BETWEEN coalesce(parent.first_seq, b.first_seq)
                                              AND coalesce(parent.last_seq, b.last_seq))
                ORDER BY b.id LIMIT ${SHOWN_BATCHES}) x) AS unsettled`);
    const { events, pending, unsettled } = check.rows[0]!;
    if (pending > 0 || (unsettled?.length ?? 0) > 0) {
      await c.query('ROLLBACK');
      const why = [
        pending > 0 ? `${pending} events not in a batch yet` : '',
        unsettled?.length ? `batches open, dead or insufficient: ${unsettled.join(', ')}` : '',
      ];
      return {
        ...verdictBase(p, events),
        action: 'kept',
        reason: why.filter(Boolean).join('; '),
        pendingEvents: pending,
        unsettledBatches: unsettled ?? [],
      };
    }
    if (o.dryRun) {
      await c.query('ROLLBACK');
      return { ...verdictBase(p, events), action: 'would drop' };
    }
    // The days are usually rolled up already (src/ledger/usage-daily.ts, run before):
    // their deducted is kept (not in the list; 0 for a day the roll-up never reached).
    await c.query(
      `INSERT INTO usage_daily (key_id, day, events, accepted, charged, overage, insufficient, dead)
       SELECT e.key_id, (e.received_at AT TIME ZONE 'UTC')::date, count(*)::int, sum(e.count)::int,
              coalesce(sum(e.count) FILTER (WHERE e.status = 'charged'), 0)::int,
              coalesce(sum(e.count) FILTER (WHERE e.status = 'overage'), 0)::int,
              coalesce(sum(e.count) FILTER (WHERE e.status = 'insufficient'), 0)::int,
              coalesce(sum(e.count) FILTER (WHERE e.status = 'dead'), 0)::int
       FROM usage_event_status e WHERE e.received_at >= $1 AND e.received_at < $2
       GROUP BY 1, 2
       ON CONFLICT (key_id, day) DO UPDATE SET events = EXCLUDED.events, accepted = EXCLUDED.accepted,
         charged = EXCLUDED.charged, overage = EXCLUDED.overage, insufficient = EXCLUDED.insufficient,
         dead = EXCLUDED.dead`,
      [p.from, p.to],
    );
    await c.query(
      `UPDATE ledger_retention SET events_since = greatest(coalesce(events_since, $1), $1) WHERE id = 1`,
      [p.to],
    );
    await c.query('COMMIT');
    await finishDrop(c, part, false);
    return { ...verdictBase(p, events), action: 'dropped' };
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * Detaches without blocking inserts and reads (CONCURRENTLY: outside a transaction),
 * then drops the table.
 */
async function finishDrop(c: ClientBase, part: string, pending: boolean): Promise<void> {
  await c.query(`ALTER TABLE usage_event DETACH PARTITION ${part} ${pending ? 'FINALIZE' : 'CONCURRENTLY'}`);
  await c.query(`DROP TABLE ${part}`);
}

/** A month detached by a run that stopped before its DROP. */
async function dropDetachedLeftovers(c: ClientBase, since: Date | null): Promise<void> {
  if (!since) return;
  const r = await c.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c
     WHERE c.relkind = 'r' AND NOT c.relispartition AND c.relname ~ '^usage_event_[0-9]{4}_[0-9]{2}$'
       AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'usage_event'::regclass)
       AND (to_date(substr(c.relname, 13), 'YYYY_MM') + interval '1 month') <= $1`,
    [since],
  );
  for (const { name } of r.rows) await c.query(`DROP TABLE ${pg.escapeIdentifier(name)}`);
}

// Settled batches formed before the events' boundary ($1), finished before the
// retention's cutoff ($2) (balances and reconciliation read the recent ones), none
// of whose events is still there (an index probe per batch: the timestamps of a
// batch and its events alone could disagree by a commit at a month's edge). $1 is
// at most the oldest attached month's start, so "received at or after $1" is every
// event still there, and in a dry run every event the run would keep.
// Derived batches go with their parent when all are final; attempts first (their
// foreign key refuses otherwise).
const SETTLED_BATCHES = `
  SELECT b.id FROM charge_batch b
  WHERE b.created_at < $1 AND coalesce(b.finished_at, b.updated_at) < $2 AND b.parent_id IS NULL
    AND b.status IN ('charged', 'partial', 'voided')
    AND NOT EXISTS (SELECT 1 FROM charge_batch d
                    WHERE d.parent_id = b.id AND d.status IN ('open', 'dead', 'insufficient'))
    AND NOT EXISTS (SELECT 1 FROM usage_event e
                    WHERE e.key_id = b.key_id AND e.seq BETWEEN b.first_seq AND b.last_seq
                      AND e.received_at >= $1)`;

async function countSettledBatchesBefore(c: ClientBase, since: Date, cutoff: Date): Promise<number> {
  const r = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${SETTLED_BATCHES}) x`, [
    since,
    cutoff,
  ]);
  return r.rows[0]!.n;
}

async function deleteSettledBatchesBefore(c: ClientBase, since: Date, cutoff: Date): Promise<number> {
  let total = 0;
  for (;;) {
    await c.query('BEGIN');
    try {
      // Locked as they are chosen: an operator's action on one waits, then finds it gone.
      const ids = (
        await c.query<{ id: string }>(
          `SELECT id::text FROM (${SETTLED_BATCHES} ORDER BY b.id LIMIT ${CHUNK} FOR UPDATE OF b) x`,
          [since, cutoff],
        )
      ).rows.map((r) => r.id);
      if (ids.length === 0) {
        await c.query('COMMIT');
        return total;
      }
      const all = `(SELECT unnest($1::bigint[]) UNION ALL SELECT id FROM charge_batch WHERE parent_id = ANY($1::bigint[]))`;
      await c.query(`DELETE FROM call_attempt WHERE batch_id IN ${all}`, [ids]);
      await c.query('DELETE FROM charge_batch WHERE parent_id = ANY($1::bigint[])', [ids]);
      await c.query('DELETE FROM charge_batch WHERE id = ANY($1::bigint[])', [ids]);
      await c.query('COMMIT');
      total += ids.length;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }
}

// Notifications every delivery of which is over (delivered, given up, cancelled);
// their deliveries go with them (ON DELETE CASCADE).
const NOTIFICATIONS_DONE = `
  SELECT n.id FROM notification n
  WHERE n.created_at < $1 AND n.dispatched_at IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM notification_delivery d WHERE d.notification_id = n.id AND d.status = 'pending')`;
const REJECTED_OLD = 'SELECT r.id FROM rejected_event r WHERE r.received_at < $1';

async function count(c: ClientBase, select: string, cutoff: Date): Promise<number> {
  return (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${select}) x`, [cutoff])).rows[0]!.n;
}

async function deleteInChunks(c: ClientBase, select: string, table: string, cutoff: Date): Promise<number> {
  let total = 0;
  for (;;) {
    const r = await c.query(`DELETE FROM ${table} WHERE id IN (${select} LIMIT ${CHUNK})`, [cutoff]);
    total += r.rowCount ?? 0;
    if ((r.rowCount ?? 0) < CHUNK) return total;
  }
}

function auditDetails(r: PruneReport) {
  return {
    cutoff: r.cutoff,
    eventsSince: r.eventsSince,
    dropped: r.months
      .filter((m) => m.action === 'dropped')
      .map((m) => ({ partition: m.partition, events: m.events })),
    batchesDeleted: r.batchesDeleted,
    notificationsDeleted: r.notificationsDeleted,
    rejectedEventsDeleted: r.rejectedEventsDeleted,
  };
}
