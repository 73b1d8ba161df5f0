// Liveness, readiness and Prometheus metrics.
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { pendingMigrations } from '../db/migrate.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { oldestUnchargedEventAgeSec } from '../metering/status.js';
import { oldestPendingEventAge, queueDepth, registry } from '../metrics.js';
import type { MeterQueues } from '../queue/queues.js';
import { withTimeout } from '../timeout.js';
import { selectOne } from './sql.js';

export interface HealthDeps {
  db: PrismaClient;
  redis: Redis;
  queues: MeterQueues;
  databaseUrl: string;
  logger: Logger;
  /** Time each readiness check may take, ms. Default 1000. */
  readyTimeoutMs?: number;
  /** Where the committed migrations are (default: prisma/migrations of this checkout). */
  migrationsDir?: string;
}

/** Job states reported in um_queue_depth. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed'] as const;

export interface ReadyCheck {
  ok: boolean;
  error?: string;
}

export function registerHealthRoutes(app: FastifyInstance, d: HealthDeps): void {
  const timeoutMs = d.readyTimeoutMs ?? 1_000;
  const check = async (what: string, fn: () => Promise<void>): Promise<ReadyCheck> => {
    try {
      await withTimeout(fn(), timeoutMs, what);
      return { ok: true };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  };

  app.get('/healthz', async () => ({ status: 'ok' }));

  // Once this process's migrations are applied they stay applied: later probes skip
  // the check (it opens a connection of its own, and /readyz needs no credentials).
  let migrated = false;

  app.get('/readyz', async (_req, reply) => {
    const [redis, postgres, migrations] = await Promise.all([
      check('redis PING', async () => {
        const pong = await d.redis.ping();
        if (pong !== 'PONG') throw new Error(`redis answered ${pong}`);
      }),
      check('postgresql select 1', () => selectOne(d.db)),
      check('migrations check', async () => {
        if (migrated) return;
        const pending = await pendingMigrations(d.databaseUrl, d.migrationsDir);
        if (pending.length > 0) throw new Error(`pending migrations: ${pending.join(', ')}`);
        migrated = true;
      }),
    ]);
    const checks = { redis, postgres, migrations };
    const failed = Object.entries(checks)
      .filter(([, c]) => !c.ok)
      .map(([name]) => name);
    if (failed.length > 0) {
      d.logger.warn({ checks }, 'not ready');
      return reply.code(503).send({ status: 'unavailable', failed, checks });
    }
    return { status: 'ready', checks };
  });

  app.get('/metrics', async (_req, reply) => {
    await Promise.all([
      ...(['events', 'charge'] as const).map((name) =>
        withTimeout(d.queues[name].getJobCounts(...QUEUE_STATES), timeoutMs, `${name} queue counts`).then(
          (counts) => {
            for (const state of QUEUE_STATES) queueDepth.set({ queue: name, state }, counts[state] ?? 0);
          },
        ),
      ),
      withTimeout(
        oldestUnchargedEventAgeSec(d.db, d.queues.events, d.redis),
        timeoutMs,
        'oldest pending event',
      ).then((age) => oldestPendingEventAge.set(age ?? 0)),
    ]).catch((err: Error) => {
      // The rest of the metrics are still worth answering with; the gauges keep their last value.
      d.logger.warn({ err: err.message }, 'metrics: could not refresh the queue/ledger gauges');
    });
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
}
