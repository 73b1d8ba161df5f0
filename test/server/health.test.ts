// /healthz, /readyz and /metrics. Readiness is tested against a private PostgreSQL
// and Redis that the test stops and starts again; the cost of a burst of probes is
// counted on a Prisma client that counts its queries and on PostgreSQL's backends.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { type PostgresServer, startPostgres } from '../../src/devservices/postgres.js';
import { type RedisServer, startRedis } from '../../src/devservices/redis.js';
import { insertEvents } from '../../src/ledger/events.js';
import { createTestDatabase } from '../support/services.js';
import { event, startTestServer, type TestServer } from './helpers.js';

/** The value of one sample of the Prometheus text format (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

async function waitForStatus(url: string, status: number, timeoutMs = 20_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(url);
    if (res.status === status || Date.now() > deadline) return res;
    await sleep(250);
  }
}

describe('/metrics and /healthz', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ label: 'metrics' });
  });
  afterAll(async () => s?.close());

  it('/healthz answers 200 and /readyz 200 naming no failing component', async () => {
    const h = await fetch(`${s.url}/healthz`);
    expect(h.status).toBe(200);
    const r = await fetch(`${s.url}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ready', failing: [] });
  });

  it('exposes the counters and gauges, and they move with traffic', async () => {
    const before = await (await fetch(`${s.url}/metrics`)).text();
    expect(before).toContain('# TYPE um_events_total counter');
    expect(before).toContain('um_queue_depth{queue="events",state="waiting"}');
    expect(before).toContain('um_queue_depth{queue="charge",state="delayed"}');
    expect(before).toContain('um_oldest_pending_event_age_seconds');
    expect(before).toContain('um_douyin_call_duration_seconds');
    expect(before).toContain('um_process_');

    const res = await s.postEvents([event('m1'), event('m2'), event('m3'), { eventId: 'bad' }]);
    expect(res.status).toBe(202);
    // An event waiting for a batch for a minute, straight in the ledger.
    const key = await s.db.meterKey.create({
      data: { openId: 'old', serviceId: 's1', serviceModeId: 'm1', isTestEnv: false },
    });
    await insertEvents(s.db, [
      { eventId: 'old-1', keyId: key.id, count: 1, occurredAt: null, enqueuedAt: null, attributes: null },
    ]);
    // It arrived a minute ago.
    await s.db.usageEvent.updateMany({
      where: { eventId: 'old-1' },
      data: { receivedAt: new Date(Date.now() - 60_000) },
    });

    const after = await (await fetch(`${s.url}/metrics`)).text();
    const accepted = { result: 'accepted', source: 'http' };
    const rejected = { result: 'rejected', source: 'http' };
    expect(sample(after, 'um_events_total', accepted) - sample(before, 'um_events_total', accepted)).toBe(3);
    expect(sample(after, 'um_events_total', rejected) - sample(before, 'um_events_total', rejected)).toBe(1);
    // The queue and ledger gauges follow within their refresh interval (2 s).
    const waiting = { queue: 'events', state: 'waiting' };
    const scrape = async () => (await fetch(`${s.url}/metrics`)).text();
    await expect
      .poll(async () => sample(await scrape(), 'um_queue_depth', waiting), { timeout: 5_000 })
      .toBeGreaterThan(sample(before, 'um_queue_depth', waiting));
    expect(sample(await scrape(), 'um_oldest_pending_event_age_seconds')).toBeGreaterThanOrEqual(59);
  });

  it('counts the age of events no worker has taken from Redis yet (every worker down)', async () => {
    // Nothing pending in this server's own ledger: a fresh server on a fresh database.
    const alone = await startTestServer({ label: 'age' });
    try {
      const statusAge = async () =>
        ((await (await alone.api('/api/status')).json()) as { oldestPendingEventAgeSec: number | null })
          .oldestPendingEventAgeSec;
      const metricAge = async () =>
        sample(await (await fetch(`${alone.url}/metrics`)).text(), 'um_oldest_pending_event_age_seconds');
      expect(await statusAge()).toBeNull();
      expect(await metricAge()).toBe(0);
      expect((await alone.postEvents([event('r1')])).status).toBe(202);
      await sleep(1_600);
      expect(await statusAge()).toBeGreaterThanOrEqual(1.5);
      // The gauge is refreshed at most every 2 s: it catches up within that.
      await expect.poll(metricAge, { timeout: 5_000 }).toBeGreaterThanOrEqual(1.5);
    } finally {
      await alone.close();
    }
  });
});

describe('/readyz follows PostgreSQL, migrations and Redis', () => {
  let pg: PostgresServer;
  let redisServer: RedisServer;
  let s: TestServer;
  beforeAll(async () => {
    [pg, redisServer] = await Promise.all([startPostgres(), startRedis({ appendOnly: false })]);
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    s = await startTestServer({ label: 'ready', databaseUrl: pg.url, redis, readyTimeoutMs: 1_000 });
  });
  afterAll(async () => {
    await s?.close();
    await Promise.all([pg?.destroy(), redisServer?.destroy()]);
  });

  it('503 naming the failing component, and nothing more, until migrated, while PostgreSQL or Redis is down; 200 when back', async () => {
    const url = `${s.url}/readyz`;
    const unmigrated = await fetch(url);
    expect(unmigrated.status).toBe(503);
    // Components only: no error text, migration names, hosts or users for anyone to read.
    expect(await unmigrated.json()).toEqual({ status: 'not_ready', failing: ['migrations'] });

    await migrate(pg.url);
    // Results are reused for a second: it turns ready within that.
    expect((await waitForStatus(url, 200)).status).toBe(200);

    await pg.stop();
    const down = await waitForStatus(url, 503);
    expect(down.status).toBe(503);
    // Migrations were found applied once; that is not checked again.
    expect(await down.json()).toEqual({ status: 'not_ready', failing: ['database'] });
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);

    await pg.start();
    const back = await waitForStatus(url, 200);
    expect(back.status).toBe(200);

    await redisServer.kill();
    const noRedis = await waitForStatus(url, 503);
    expect(noRedis.status).toBe(503);
    expect(await noRedis.json()).toEqual({ status: 'not_ready', failing: ['redis'] });
    await redisServer.start();
    expect((await waitForStatus(url, 200)).status).toBe(200);
  });
});

describe('a burst of probes costs the database a bounded handful of queries', () => {
  const POOL = 4;
  let s: TestServer;
  let admin: pg.Client;
  let databaseName: string;
  let queries = 0;
  beforeAll(async () => {
    const databaseUrl = await createTestDatabase('probes');
    databaseName = new URL(databaseUrl).pathname.slice(1);
    // Every operation of the server's client, raw statements included, is counted.
    const db = createPrisma(databaseUrl, { poolSize: POOL }).$extends({
      query: {
        async $allOperations({ args, query }) {
          queries += 1;
          return query(args);
        },
      },
    }) as unknown as PrismaClient;
    // Results reused for a minute: a burst slowed down by a busy machine must not
    // straddle an expiry and count a second refresh.
    s = await startTestServer({
      label: 'probes',
      databaseUrl,
      db,
      readyCacheMs: 60_000,
      metricsRefreshMs: 60_000,
    });
    admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await s?.close();
  });

  /** Backends connected to the server's database, other than the one asking. */
  const backends = async () =>
    (
      await admin.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [databaseName],
      )
    ).rows[0]!.n;

  it('50 concurrent /readyz and 50 /metrics: a few queries in all, no connection beyond the pool', async () => {
    queries = 0;
    let peak = 0;
    let bursting = true;
    const sampler = (async () => {
      while (bursting) peak = Math.max(peak, await backends());
    })();
    const responses = await Promise.all([
      ...Array.from({ length: 50 }, () => fetch(`${s.url}/readyz`)),
      ...Array.from({ length: 50 }, () => fetch(`${s.url}/metrics`)),
    ]);
    bursting = false;
    await sampler;
    expect(responses.map((r) => r.status)).toEqual(Array(100).fill(200));
    await Promise.all(responses.map((r) => r.text()));
    // One readiness run (select 1 and the migrations table) and one gauge refresh
    // (oldest pending event), whatever the number of probes.
    expect(queries).toBeGreaterThan(0);
    expect(queries).toBeLessThanOrEqual(8);
    // The migrations check goes through the pool too: nothing opened per probe.
    expect(peak).toBeLessThanOrEqual(POOL);

    // Probed again at once: answered from the cached results.
    const before = queries;
    await Promise.all(Array.from({ length: 20 }, () => fetch(`${s.url}/readyz`).then((r) => r.text())));
    expect(queries).toBe(before);
  });
});
