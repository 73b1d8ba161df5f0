// A real server for tests: buildServer on port 0 over a fresh migrated database and
// a unique Redis prefix (real PostgreSQL and Redis from test/support/global-setup.ts).
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { createLogger } from '../../src/logger.js';
import { createQueues, type MeterQueues } from '../../src/queue/queues.js';
import type { RedisClient } from '../../src/queue/redis-connection.js';
import { buildServer, type ServerDeps } from '../../src/server/app.js';
import { createTestDatabase, redisUrl, uniquePrefix } from '../support/services.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export const API_KEY = 'test-api-key-0123456789';
export const OTHER_API_KEY = 'second-key';
export const OPERATOR = { user: 'ops', password: 'pa:ss-w0rd' };

export const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
export const operatorAuth = () => basic(OPERATOR.user, OPERATOR.password);

export interface TestServer {
  url: string;
  app: FastifyInstance;
  db: PrismaClient;
  redis: RedisClient;
  prefix: string;
  databaseUrl: string;
  queues: MeterQueues;
  /** POST /v1/events with the API key. */
  postEvents(body: unknown, headers?: Record<string, string>): Promise<Response>;
  /** A request to the operator API with Basic credentials. */
  api(path: string, init?: { method?: string; body?: unknown }): Promise<Response>;
  close(): Promise<void>;
}

export interface TestServerOptions extends Partial<ServerDeps> {
  label: string;
  /** Default: a fresh database cloned from the migrated template. */
  databaseUrl?: string;
  /** Default: the shared test Redis. */
  redisUrl?: string;
}

export async function startTestServer(o: TestServerOptions): Promise<TestServer> {
  const databaseUrl = o.databaseUrl ?? (await createTestDatabase(o.label));
  const redis = o.redis ?? new Redis(o.redisUrl ?? redisUrl(), { maxRetriesPerRequest: 2 });
  redis.on('error', () => {});
  const db = o.db ?? createPrisma(databaseUrl, { poolSize: 4 });
  const prefix = o.prefix ?? uniquePrefix(o.label);
  const { label: _label, redisUrl: _redisUrl, databaseUrl: _databaseUrl, ...deps } = o;
  const app = await buildServer({
    apiKeys: [API_KEY, OTHER_API_KEY],
    users: new Map([
      [OPERATOR.user, OPERATOR.password],
      ['auditor', 'another-password'],
    ]),
    logger: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    ...deps,
    db,
    redis,
    prefix,
  });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const queues = createQueues(redis, prefix);
  for (const q of [queues.events, queues.charge]) q.on('error', () => {});
  return {
    url: address,
    app,
    db,
    redis,
    prefix,
    databaseUrl,
    queues,
    postEvents: (body, headers = {}) =>
      fetch(`${address}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    api: (path, init = {}) =>
      fetch(`${address}${path}`, {
        method: init.method ?? 'GET',
        headers: {
          authorization: operatorAuth(),
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      }),
    async close() {
      await queues.close();
      await app.close();
      await db.$disconnect();
      redis.disconnect();
    },
  };
}

let seq = 0;
/** A valid event with a unique id. */
export function event(openId = 'u1', count = 1, extra: Record<string, unknown> = {}) {
  seq += 1;
  return {
    eventId: `ev-${process.pid}-${Date.now()}-${seq}`,
    openId,
    serviceId: 's1',
    serviceModeId: 'm1',
    count,
    ...extra,
  };
}
