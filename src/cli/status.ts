// `npm run cli -- status`: events and batches by status, queue counts, oldest pending
// event age, and the events the ledger rejected (count and newest few), as JSON.
import { rejectedEventSummary } from '../ledger/rejected-events.js';
import { getMeterStatus } from '../metering/status.js';
import { cliConfig, withLedger } from './config.js';

/** Rejected events listed in full (the count covers them all). */
const REJECTED_SHOWN = 5;

export async function runStatusCommand(args: string[]): Promise<number> {
  if (args.length > 0) {
    process.stderr.write('usage: npm run cli -- status\n');
    return 2;
  }
  const config = cliConfig(['database']);
  if (!config) return 2;
  return withLedger(config, async ({ db, redis, prefix }) => {
    const [status, rejectedEvents] = await Promise.all([
      getMeterStatus({ db, redis, prefix }),
      rejectedEventSummary(db, REJECTED_SHOWN),
    ]);
    process.stdout.write(`${JSON.stringify({ ...status, rejectedEvents }, null, 2)}\n`);
    return 0;
  });
}
