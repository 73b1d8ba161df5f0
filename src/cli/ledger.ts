// `npm run cli -- ledger prune [--dry-run] [--json] | partitions`: the retention by
// hand (the worker runs it daily: src/metering/ledger-maintenance.ts), and the list
// of usage_event's monthly partitions. Needs only PostgreSQL.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { listPartitions } from '../ledger/partitions.js';
import type { PruneReport } from '../ledger/prune.js';
import { maintainLedger } from '../metering/ledger-maintenance.js';
import { cliConfig } from './config.js';

const usage = 'usage: npm run cli -- ledger prune [--dry-run] [--json] | partitions [--json]\n';

export async function runLedgerCommand(args: string[]): Promise<number> {
  let parsed: { positionals: string[]; values: { 'dry-run'?: boolean; json?: boolean } };
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const [command, ...extra] = parsed.positionals;
  const { json } = parsed.values;
  const dryRun = parsed.values['dry-run'] ?? false;
  if (
    extra.length > 0 ||
    !['prune', 'partitions'].includes(command ?? '') ||
    (dryRun && command !== 'prune')
  ) {
    process.stderr.write(usage);
    return 2;
  }
  const config = cliConfig(['database']);
  if (!config) return 2;

  if (command === 'partitions') {
    const c = new pg.Client({ connectionString: config.DATABASE_URL });
    await c.connect();
    try {
      const parts = await listPartitions(c);
      if (json) process.stdout.write(`${JSON.stringify(parts)}\n`);
      else
        for (const p of parts)
          process.stdout.write(
            `${p.name}  ${p.from.toISOString()} .. ${p.to.toISOString()}  ~${Math.max(0, p.estimatedRows)} rows\n`,
          );
      return 0;
    } finally {
      await c.end();
    }
  }

  const { prune } = await maintainLedger(config.DATABASE_URL!, {
    retentionDays: config.METER_RETENTION_DAYS,
    actor: `cli:${process.env.USER ?? 'unknown'}`,
    dryRun,
  });
  process.stdout.write(json ? `${JSON.stringify(prune)}\n` : describe(prune, dryRun));
  return prune.skipped ? 1 : 0;
}

function describe(r: PruneReport, dryRun: boolean): string {
  const lines = [
    `${dryRun ? 'dry run: nothing changed. ' : ''}retention cutoff ${r.cutoff.toISOString()}` +
      (r.eventsSince ? `; events before ${r.eventsSince.toISOString()} are gone` : ''),
  ];
  if (r.skipped) lines.push(`skipped: ${r.skipped}`);
  if (r.months.length === 0) lines.push('no month is past the retention');
  for (const m of r.months)
    lines.push(`  ${m.partition} (${m.events} events): ${m.action}${m.reason ? ` (${m.reason})` : ''}`);
  const verb = dryRun ? 'would delete' : 'deleted';
  lines.push(
    `${verb}: ${r.batchesDeleted} settled batches, ${r.notificationsDeleted} notifications, ` +
      `${r.rejectedEventsDeleted} rejected events`,
  );
  return `${lines.join('\n')}\n`;
}
