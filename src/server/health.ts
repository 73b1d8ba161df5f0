// Liveness, readiness and Prometheus metrics. They need no credentials and are
// probed often (load balancers, several scrapers), so none of them does database or
// Redis work per request: /readyz's checks, and the gauges of /metrics that need the
// ledger or the queues, run at most once per interval, as one run shared by every
// request that arrives meanwhile, over the pooled connections (none opened per probe).
import type { FastifyInstance } from 'fastify';
import { readMigrations } from '../db/migrate.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import { appliedMigrations, selectOne } from '../ledger/health.js';
import type { Logger } from '../logger.js';
import { oldestUnchargedEventAgeSec } from '../metering/status.js';
import { oldestPendingEventAge, queueDepth, registry } from '../metrics.js';
import { chargingState } from '../queue/charging-pause.js';
import type { MeterQueues } from '../queue/queues.js';
import type { RedisClient } from '../queue/redis-connection.js';
import { withTimeout } from '../timeout.js';
import { SharedResult } from './cache.js';

export interface HealthDeps {
  db: PrismaClient;
  redis: RedisClient;
  /** The meter's key prefix, redisKeyPrefix (where the pause's who and when are kept). */
  prefix: string;
  queues: MeterQueues;
  logger: Logger;
  /** Time each readiness check may take, ms. Default 1000. */
  readyTimeoutMs?: number;
  /** How long one readiness result answers every probe, ms. Default 1000. */
  readyCacheMs?: number;
  /** The queue and ledger gauges of /metrics are refreshed at most this often, ms. Default 2000. */
  metricsRefreshMs?: number;
  /** Where the committed migrations are (default: prisma/migrations of this checkout). */
  migrationsDir?: string;
}

/** Job states reported in um_queue_depth. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed'] as const;

export type ReadyComponent = 'redis' | 'database' | 'migrations';

/**
 * What /readyz answers. Components only, never error text: the endpoint is open to
 * anyone, and a driver's message may name hosts, users or databases. The reasons
 * are in the server log.
 */
export interface Readiness {
  status: 'ready' | 'not_ready';
  failing: ReadyComponent[];
}

export function registerHealthRoutes(app: FastifyInstance, d: HealthDeps): void {
  const timeoutMs = d.readyTimeoutMs ?? 1_000;
  /** The failure's message, or undefined when the check passed in time. */
  const check = async (what: string, fn: () => Promise<void>): Promise<string | undefined> => {
    try {
      await withTimeout(fn(), timeoutMs, what);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  };

  // Once this process's migrations are applied they stay applied: later runs skip it.
  let migrated = false;
  const migrationsCheck = async () => {
    if (migrated) return;
    const [expected, applied] = await Promise.all([readMigrations(d.migrationsDir), appliedMigrations(d.db)]);
    const pending = expected.map((m) => m.name).filter((name) => !applied?.has(name));
    if (pending.length > 0) throw new Error(`pending migrations: ${pending.join(', ')}`);
    migrated = true;
  };

  // Migrations are only worth asking about once the database answers.
  const databaseChecks = async (): Promise<[string | undefined, string | undefined]> => {
    const database = await check('postgresql select 1', () => selectOne(d.db));
    return [database, database === undefined ? await check('migrations check', migrationsCheck) : undefined];
  };

  let lastFailing = '';
  const readiness = new SharedResult<Readiness>(d.readyCacheMs ?? 1_000, async () => {
    const [redis, [database, migrations]] = await Promise.all([
      check('redis PING', async () => {
        const pong = await d.redis.ping();
        if (pong !== 'PONG') throw new Error(`redis answered ${pong}`);
      }),
      databaseChecks(),
    ]);
    const errors = { redis, database, migrations };
    const failing = (Object.keys(errors) as ReadyComponent[]).filter((c) => errors[c] !== undefined);
    // Logged when the set changes, not on every run of a long outage.
    const key = failing.join(',');
    if (key !== lastFailing) {
      if (failing.length > 0) d.logger.warn({ failing, errors }, 'not ready');
      else d.logger.info('ready');
      lastFailing = key;
    }
    return { status: failing.length > 0 ? 'not_ready' : 'ready', failing };
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const r = await readiness.get();
    return reply.code(r.status === 'ready' ? 200 : 503).send(r);
  });

  const gauges = new SharedResult<void>(d.metricsRefreshMs ?? 2_000, () =>
    Promise.all([
      ...(['events', 'charge'] as const).map((name) =>
        withTimeout(d.queues[name].getJobCounts(...QUEUE_STATES), timeoutMs, `${name} queue counts`).then(
          (counts) => {
            for (const state of QUEUE_STATES) queueDepth.set({ queue: name, state }, counts[state] ?? 0);
          },
        ),
      ),
      // Sets um_charging_paused as it reads the flag.
      withTimeout(chargingState(d.queues.charge, d.redis, d.prefix), timeoutMs, 'charging state'),
      withTimeout(
        oldestUnchargedEventAgeSec(d.db, d.queues.events, d.redis),
        timeoutMs,
        'oldest pending event',
      ).then((age) => oldestPendingEventAge.set(age ?? 0)),
    ]).then(
      () => undefined,
      (err: Error) => {
        // The rest of the metrics are still worth answering with; the gauges keep their last value.
        d.logger.warn({ err: err.message }, 'metrics: could not refresh the queue/ledger gauges');
      },
    ),
  );

  app.get('/metrics', async (_req, reply) => {
    await gauges.get();
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
}
