// `npm run cli -- charging pause [--reason TEXT] | resume | status`: stop and
// restart every DecrUserRemainTimes call of the deployment (src/queue/charging-pause.ts);
// ingestion goes on. Audited like the dashboard's button, with `cli:<user>` as actor.
import { parseArgs } from 'node:util';
import { type ChargingState, chargingState, pauseCharging, resumeCharging } from '../queue/charging-pause.js';
import { createQueues } from '../queue/queues.js';
import { cliConfig, withLedger } from './config.js';

const usage = 'usage: npm run cli -- charging pause [--reason TEXT] | resume | status\n';

export async function runChargingCommand(args: string[]): Promise<number> {
  let parsed: { positionals: string[]; values: { reason?: string } };
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { reason: { type: 'string' } },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const [command, ...extra] = parsed.positionals;
  const { reason } = parsed.values;
  if (
    extra.length > 0 ||
    !['pause', 'resume', 'status'].includes(command ?? '') ||
    (reason && command !== 'pause')
  ) {
    process.stderr.write(usage);
    return 2;
  }
  const config = cliConfig(['database']);
  if (!config) return 2;
  return withLedger(config, async ({ db, redis }) => {
    const prefix = config.REDIS_PREFIX;
    const queues = createQueues(redis, prefix);
    try {
      const actor = `cli:${process.env.USER ?? 'unknown'}`;
      let state: ChargingState;
      if (command === 'status') state = await chargingState(queues.charge, redis, prefix);
      else {
        state =
          command === 'pause'
            ? await pauseCharging(queues.charge, redis, prefix, { by: actor, reason })
            : await resumeCharging(queues.charge, redis, prefix);
        await db.operatorAudit.create({
          data: { actor, action: `charging.${command}`, target: null, details: reason ? { reason } : {} },
        });
      }
      process.stdout.write(`${JSON.stringify(state)}\n`);
      return 0;
    } finally {
      await queues.close();
    }
  });
}
