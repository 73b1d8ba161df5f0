// `npm run cli -- batches replay ID | --all-dead`: send dead batches again with
// their stored out_trade_no and count.
// `npm run cli -- batches resolve ID --as charged|uncharged`: an operator's
// decision on a dead or insufficient batch (see src/metering/resolve.ts).
import { parseArgs } from 'node:util';
import { replayBatches } from '../metering/replay.js';
import { resolveBatches } from '../metering/resolve.js';
import { cliConfig, withLedger } from './config.js';

const usage = `usage: npm run cli -- batches replay ID | --all-dead
       npm run cli -- batches resolve ID --as charged|uncharged
(ID is a batch id number)
`;

export async function runBatchesCommand(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { 'all-dead': { type: 'boolean' }, as: { type: 'string' } },
    });
  try {
    parsed = parse();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const [command, id, ...extra] = parsed.positionals;
  const allDead = parsed.values['all-dead'] === true;
  const as = parsed.values.as;
  const validId = /^\d{1,18}$/.test(id ?? '');
  const valid =
    extra.length === 0 &&
    (command === 'replay'
      ? as === undefined && (allDead ? id === undefined : validId)
      : command === 'resolve' && !allDead && validId && (as === 'charged' || as === 'uncharged'));
  if (!valid) {
    process.stderr.write(usage);
    return 2;
  }
  const config = cliConfig(['database']);
  if (!config) return 2;
  return withLedger(config, async ({ db, redis, prefix }) => {
    const actor = `cli:${process.env.USER ?? 'unknown'}`;
    const deps = { db, redis, prefix, deadlineSec: config.METER_RETRY_DEADLINE_SEC };
    if (command === 'resolve') {
      const result = await resolveBatches(deps, [BigInt(id!)], as as 'charged' | 'uncharged', actor);
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return result.resolved.length === 0 ? 1 : 0;
    }
    const result = await replayBatches(
      {
        ...deps,
        deadlineSec: config.METER_RETRY_DEADLINE_SEC,
        idempotencyWindowSec: config.DOUYIN_IDEMPOTENCY_WINDOW_SEC,
      },
      allDead ? { allDead: true } : { id: BigInt(id!) },
      actor,
    );
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return !allDead && result.replayed.length === 0 ? 1 : 0;
  });
}
