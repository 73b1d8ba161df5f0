// Redis (append-only file on) and PostgreSQL each restarted during the run.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { type PostgresServer, startPostgres } from '../../src/devservices/postgres.js';

import { type RedisServer, startRedis } from '../../src/devservices/redis.js';
import { fundUsers, makeEvents, type Pipeline, startPipeline } from '../support/pipeline.js';

describe('service restarts', () => {
  let p: Pipeline;
  let redis: RedisServer;
  let pg: PostgresServer;
  const users = Array.from({ length: 10 }, (_, i) => `ru${i}`);
  beforeAll(async () => {
    [redis, pg] = await Promise.all([startRedis({ appendOnly: true }), startPostgres()]);
    await migrate(pg.url);
    p = await startPipeline({
      label: 'restart',
      redisUrl: redis.url,
      databaseUrl: pg.url,
      faults: { latencyMs: 5 },
    });
    fundUsers(p.sim, users);
    p.spawnWorker();
    p.spawnWorker();
  });
  afterAll(async () => {
    await p.close();
    await Promise.all([redis.destroy(), pg.destroy()]);
  });

  it('loses nothing and charges nothing twice when Redis and then PostgreSQL restart mid-run', async () => {
    await p.send(makeEvents(500, users, 'r0'));
    await sleep(500);
    await redis.stop(); // graceful: the AOF is flushed, as a production restart would
    await sleep(1_000);
    await redis.start();
    await p.send(makeEvents(500, users, 'r1'));
    await sleep(500);
    await pg.stop();
    await sleep(1_500);
    await pg.start();
    await p.send(makeEvents(500, users, 'r2'));
    await p.waitUntilSettled(120_000);
    await p.expectExactTotals();
    expect(p.sent.size).toBe(1_500);
  });
});
