// `npm run cli -- status`: events and batches by status, queue counts, oldest pending event age, as JSON.
import { getMeterStatus } from '../metering/status.js';
import { cliConfig, withLedger } from './config.js';

export async function runStatusCommand(args: string[]): Promise<number> {
  if (args.length > 0) {
    process.stderr.write('usage: npm run cli -- status\n');
    return 2;
  }
  const config = cliConfig(['database']);
  if (!config) return 2;
  return withLedger(config, async ({ db, redis }) => {
    const status = await getMeterStatus({ db, redis, prefix: config.REDIS_PREFIX });
    process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return 0;
  });
}
