// Starts the HTTP server from the configuration: the connections it needs, the
// Douyin client, the dashboard build, then listen. Used by `npm start` and the demo.
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { createPrisma } from '../db/prisma.js';
import type { Logger } from '../logger.js';
import { douyinCallDuration, rateLimitWait } from '../metrics.js';
import { createRedis } from '../queue/redis-connection.js';
import { redisKeyPrefix } from '../queue/redis-prefix.js';
import { buildServer } from './app.js';
import { parseApiKeys, parseDashboardUsers } from './auth.js';
import type { OperatorDouyinApi } from './douyin-api.js';
import { ensureWebBuilt } from './web.js';

export interface RunningServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:3000 */
  url: string;
  close(): Promise<void>;
}

export interface StartServerOptions {
  config: Config;
  logger: Logger;
  /** Default: a DouyinMarketClient from the configuration (when DOUYIN_CLIENT_KEY/SECRET are set). */
  douyin?: OperatorDouyinApi & { close?: () => Promise<void> };
}

export async function startServer({
  config,
  logger,
  douyin: givenDouyin,
}: StartServerOptions): Promise<RunningServer> {
  // Fail on bad credentials settings before opening any connection.
  const apiKeys = parseApiKeys(config.API_KEYS);
  const users = parseDashboardUsers(config.DASHBOARD_USERS);
  await ensureWebBuilt(logger);

  // A few retries per command, not forever: a request must fail (503) while Redis is away.
  const redis = createRedis(config, { maxRetriesPerRequest: 2 });
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  // WAIT holds the connection it runs on: events get one of their own, so that the
  // dashboard, the limiter and the health checks never queue behind it.
  const waitReplicas =
    config.REDIS_WAIT_REPLICAS > 0
      ? { replicas: config.REDIS_WAIT_REPLICAS, timeoutMs: config.REDIS_WAIT_TIMEOUT_MS }
      : undefined;
  const ingestRedis = waitReplicas ? createRedis(config, { maxRetriesPerRequest: 2 }) : undefined;
  ingestRedis?.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  const db = createPrisma(config.DATABASE_URL!, { poolSize: config.DATABASE_POOL_SIZE });
  let douyin = givenDouyin;
  if (!douyin && config.DOUYIN_CLIENT_KEY && config.DOUYIN_CLIENT_SECRET) {
    const { createDouyinClientFromConfig } = await import('../douyin/index.js');
    douyin = createDouyinClientFromConfig(config, redis, {
      logger,
      onRateLimitSlot: (slot) => rateLimitWait.observe(slot.waitedMs / 1000),
      onCall: (e) =>
        douyinCallDuration.observe(
          { method: e.method, outcome: e.outcome, kind: e.kind ?? 'none' },
          e.durationMs / 1000,
        ),
    });
  }

  const app = await buildServer({
    db,
    redis,
    prefix: redisKeyPrefix(config),
    waitReplicas,
    ingestRedis,
    apiKeys,
    users,
    douyin,
    logger,
    session: config.SESSION_SECRET ? { secret: Buffer.from(config.SESSION_SECRET, 'utf8') } : undefined,
    signIn: { maxFailures: config.SIGNIN_MAX_FAILURES, windowSec: config.SIGNIN_WINDOW_SEC },
    trustProxy: config.TRUST_PROXY,
    douyinClientSecret: config.DOUYIN_CLIENT_SECRET,
    balanceMaxAgeSec: config.METER_BALANCE_MAX_AGE_SEC,
    notifyAllowedHosts: config.NOTIFY_ALLOWED_HOSTS,
    admission:
      config.METER_ADMISSION === 'reject'
        ? { unknown: config.METER_ADMISSION_UNKNOWN, holdSec: config.METER_ADMISSION_HOLD_SEC }
        : undefined,
    replay: {
      deadlineSec: config.METER_RETRY_DEADLINE_SEC,
      idempotencyWindowSec: config.DOUYIN_IDEMPOTENCY_WINDOW_SEC,
    },
  });
  const address = await app.listen({ port: config.PORT, host: config.HOST });
  const url = address.replace('[::1]', 'localhost');
  logger.info({ url, dashboard: `${url}/` }, 'server listening');
  return {
    app,
    url,
    async close() {
      await app.close();
      if (!givenDouyin) await douyin?.close?.();
      await db.$disconnect();
      redis.disconnect();
      ingestRedis?.disconnect();
    },
  };
}
