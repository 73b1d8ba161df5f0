// `npm run cli -- charging pause [--reason TEXT] | resume | status`: stop and
// restart every DecrUserRemainTimes call of the deployment (src/queue/charging-pause.ts);
// ingestion goes on. Audited like the dashboard's button, with `cli:<user>` as actor.
import { parseArgs } from 'node:util';
import { extendOpenBatchDeadlines } from '../ledger/operator-batches.js';
import { WINDOW_SAFE_FRACTION } from '../metering/decide.js';
import { NotReplicatedError } from '../producer/errors.js';
import {
  type ChargingState,
  chargingState,
  pauseCharging,
  pauseReason,
  resumeCharging,
} from '../queue/charging-pause.js';
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
  const checked = reason === undefined ? undefined : pauseReason.safeParse(reason);
  if (checked && !checked.success) {
    process.stderr.write(`--reason ${checked.error.issues[0]!.message}\n${usage}`);
    return 2;
  }
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
  return withLedger(config, async ({ db, redis, prefix }) => {
    const queues = createQueues(redis, prefix);
    const wait =
      config.REDIS_WAIT_REPLICAS > 0
        ? { replicas: config.REDIS_WAIT_REPLICAS, timeoutMs: config.REDIS_WAIT_TIMEOUT_MS }
        : undefined;
    try {
      const actor = `cli:${process.env.USER ?? 'unknown'}`;
      let state: ChargingState;
      if (command === 'status') state = await chargingState(queues.charge, redis, prefix);
      else {
        let details: Record<string, string> = reason ? { reason } : {};
        if (command === 'pause')
          state = await pauseCharging(queues.charge, redis, prefix, { by: actor, reason }, wait);
        else {
          const resumed = await resumeCharging(queues.charge, redis, prefix, wait);
          state = resumed.state;
          // The batches that waited get their retry time back (see extendOpenBatchDeadlines).
          const moved = resumed.pausedAt
            ? await extendOpenBatchDeadlines(
                db,
                (Date.now() - resumed.pausedAt.getTime()) / 1000,
                config.DOUYIN_IDEMPOTENCY_WINDOW_SEC * WINDOW_SAFE_FRACTION,
              )
            : 0;
          details = { deadlinesMoved: String(moved) };
        }
        await db.operatorAudit.create({
          data: { actor, action: `charging.${command}`, target: null, details },
        });
      }
      process.stdout.write(`${JSON.stringify(state)}\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof NotReplicatedError)) throw err;
      // In force on the master, not confirmed by the replicas: a failover now could undo it.
      await db.operatorAudit.create({
        data: {
          actor: `cli:${process.env.USER ?? 'unknown'}`,
          action: `charging.${command}`,
          target: null,
          details: { replicated: 'no' },
        },
      });
      process.stderr.write(`${err.message}; it is in force on the Redis master: run the command again\n`);
      return 1;
    } finally {
      await queues.close();
    }
  });
}
