// The ledger's daily upkeep, run by one worker of the deployment at a time: make
// the coming months' partitions of usage_event, roll the completed days up into
// usage_daily (src/ledger/usage-daily.ts), then apply the retention
// (src/ledger/prune.ts). A BullMQ job scheduler on a queue of its own decides when
// and who (one job per day however many workers run); every worker also makes the
// partitions once at start, so an insert always finds its month.
import { type ConnectionOptions, Queue, Worker } from 'bullmq';
import pg from 'pg';
import type { Logger } from 'pino';
import { ensurePartitionsAhead } from '../ledger/partitions.js';
import { type PruneReport, pruneLedger } from '../ledger/prune.js';
import { type RollUpReport, rollUpDays } from '../ledger/usage-daily.js';

export const MAINTENANCE_QUEUE = 'maintenance';
const SCHEDULER_ID = 'ledger-daily';
const DAY_MS = 86_400_000;

export interface LedgerMaintenanceOptions {
  /** Makes a Redis connection (BullMQ's Worker blocks one of its own). */
  connection: () => ConnectionOptions;
  prefix: string;
  databaseUrl: string;
  retentionDays: number;
  workerId: string;
  logger: Logger;
  /** Between runs. Default one day. */
  everyMs?: number;
}

export interface LedgerMaintenance {
  close(): Promise<void>;
}

/**
 * One run: partitions ahead, the days' roll-up, then the retention. The roll-up comes
 * first so that a month's days are in usage_daily (with what was deducted) before the
 * retention drops the month and adds its statuses.
 */
export async function maintainLedger(
  databaseUrl: string,
  o: { retentionDays: number; actor: string; dryRun?: boolean },
): Promise<{ partitions: string[]; rollUp: RollUpReport | null; prune: PruneReport }> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const partitions = o.dryRun ? [] : await ensurePartitionsAhead(c);
    const rollUp = o.dryRun ? null : await rollUpDays(c, {});
    // A month is dropped only once its days are rolled up: its calls go with it, and
    // what they deducted could not be counted again.
    const prune =
      rollUp && rollUp.behind > 0
        ? notYet(o.retentionDays, `${rollUp.behind} days not rolled up yet; the next run goes on`)
        : await pruneLedger(c, o);
    return { partitions, rollUp, prune };
  } finally {
    await c.end();
  }
}

/** The report of a retention that did not run. */
function notYet(retentionDays: number, skipped: string): PruneReport {
  return {
    cutoff: new Date(Date.now() - retentionDays * 86_400_000),
    eventsSince: null,
    months: [],
    batchesDeleted: 0,
    notificationsDeleted: 0,
    rejectedEventsDeleted: 0,
    skipped,
  };
}

export async function startLedgerMaintenance(o: LedgerMaintenanceOptions): Promise<LedgerMaintenance> {
  // The months ahead exist already unless no worker ran for months; a failure here
  // (a lock that timed out) is logged and the daily run tries again.
  const c = new pg.Client({ connectionString: o.databaseUrl });
  try {
    await c.connect();
    await ensurePartitionsAhead(c);
  } catch (err) {
    o.logger.warn({ err: (err as Error).message }, 'partitions ahead not made at start');
  } finally {
    await c.end().catch(() => {});
  }
  const queue = new Queue(MAINTENANCE_QUEUE, { connection: o.connection(), prefix: o.prefix });
  await queue.upsertJobScheduler(
    SCHEDULER_ID,
    { every: o.everyMs ?? DAY_MS },
    { name: 'ledger', opts: { removeOnComplete: { count: 30 }, removeOnFail: { count: 30 } } },
  );
  const worker = new Worker(
    MAINTENANCE_QUEUE,
    async () => {
      const { partitions, rollUp, prune } = await maintainLedger(o.databaseUrl, {
        retentionDays: o.retentionDays,
        actor: `worker:${o.workerId}`,
      });
      o.logger.info(
        {
          partitions: partitions.length,
          daysRolledUp: rollUp?.days.length,
          rolledThrough: rollUp?.rolledThrough,
          daysBehind: rollUp?.behind,
          cutoff: prune.cutoff,
          eventsSince: prune.eventsSince,
          months: prune.months.map((m) => ({ partition: m.partition, action: m.action, reason: m.reason })),
          batchesDeleted: prune.batchesDeleted,
          notificationsDeleted: prune.notificationsDeleted,
          rejectedEventsDeleted: prune.rejectedEventsDeleted,
          skipped: prune.skipped,
        },
        'ledger maintenance done',
      );
      return { dropped: prune.months.filter((m) => m.action === 'dropped').length };
    },
    // A month's check reads the month once: minutes on a large ledger. The lock is
    // renewed while it runs; a worker that dies mid-run leaves a run the next one redoes.
    { connection: o.connection(), prefix: o.prefix, concurrency: 1, lockDuration: 60_000 },
  );
  worker.on('error', (err) => o.logger.warn({ err: err.message }, 'maintenance worker error'));
  worker.on('failed', (_job, err) => o.logger.warn({ err: err.message }, 'ledger maintenance failed'));
  return {
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}
