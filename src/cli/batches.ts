// `npm run cli -- batches replay ID | --all-dead`: send dead batches again with
// their stored out_trade_no and count.
import { parseArgs } from 'node:util';
import { replayBatches } from '../metering/replay.js';
import { cliConfig, withLedger } from './config.js';

export async function runBatchesCommand(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({ args, allowPositionals: true, strict: true, options: { 'all-dead': { type: 'boolean' } } });
  try {
    parsed = parse();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nusage: npm run cli -- batches replay ID | --all-dead\n`);
    return 2;
  }
  const [command, id, ...extra] = parsed.positionals;
  const allDead = parsed.values['all-dead'] === true;
  if (
    command !== 'replay' ||
    extra.length > 0 ||
    (allDead ? id !== undefined : !/^\d{1,18}$/.test(id ?? ''))
  ) {
    process.stderr.write(
      'usage: npm run cli -- batches replay ID | --all-dead   (ID is a batch id number)\n',
    );
    return 2;
  }
  const config = cliConfig(['database']);
  if (!config) return 2;
  return withLedger(config, async ({ db, redis }) => {
    const actor = `cli:${process.env.USER ?? 'unknown'}`;
    const result = await replayBatches(
      { db, redis, prefix: config.REDIS_PREFIX, deadlineSec: config.METER_RETRY_DEADLINE_SEC },
      allDead ? { allDead: true } : { id: BigInt(id!) },
      actor,
    );
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return !allDead && result.replayed.length === 0 ? 1 : 0;
  });
}
