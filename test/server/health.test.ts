// /healthz, /readyz and /metrics. Readiness is tested against a private PostgreSQL
// and Redis that the test stops and starts again.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { type PostgresServer, startPostgres } from '../../src/devservices/postgres.js';
import { type RedisServer, startRedis } from '../../src/devservices/redis.js';
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
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('/metrics and /healthz', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ label: 'metrics' });
  });
  afterAll(async () => s?.close());

  it('/healthz answers 200 and /readyz 200 with every check named', async () => {
    const h = await fetch(`${s.url}/healthz`);
    expect(h.status).toBe(200);
    const r = await fetch(`${s.url}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({
      status: 'ready',
      checks: { redis: { ok: true }, postgres: { ok: true }, migrations: { ok: true } },
    });
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
    const receivedAt = new Date(Date.now() - 60_000);
    const old = await s.db.usageEvent.create({
      data: { eventId: 'old-1', keyId: key.id, count: 1, receivedAt },
    });
    // As the ledger's insertEvents does: a new event is also queued as pending.
    await s.db.pendingEvent.create({ data: { seq: old.seq, keyId: key.id, count: 1, receivedAt } });

    const after = await (await fetch(`${s.url}/metrics`)).text();
    const accepted = { result: 'accepted', source: 'http' };
    const rejected = { result: 'rejected', source: 'http' };
    expect(sample(after, 'um_events_total', accepted) - sample(before, 'um_events_total', accepted)).toBe(3);
    expect(sample(after, 'um_events_total', rejected) - sample(before, 'um_events_total', rejected)).toBe(1);
    const waiting = { queue: 'events', state: 'waiting' };
    expect(sample(after, 'um_queue_depth', waiting)).toBeGreaterThan(
      sample(before, 'um_queue_depth', waiting),
    );
    expect(sample(after, 'um_oldest_pending_event_age_seconds')).toBeGreaterThanOrEqual(59);
  });

  it('counts the age of events no worker has taken from Redis yet (every worker down)', async () => {
    // Nothing pending in this server's own ledger: a fresh server on a fresh database.
    const alone = await startTestServer({ label: 'age' });
    try {
      const ageNow = async () => {
        const status = (await (await alone.api('/api/status')).json()) as {
          oldestPendingEventAgeSec: number | null;
        };
        const metric = sample(
          await (await fetch(`${alone.url}/metrics`)).text(),
          'um_oldest_pending_event_age_seconds',
        );
        return { status: status.oldestPendingEventAgeSec, metric };
      };
      expect(await ageNow()).toEqual({ status: null, metric: 0 });
      expect((await alone.postEvents([event('r1')])).status).toBe(202);
      await new Promise((r) => setTimeout(r, 1_600));
      const { status, metric } = await ageNow();
      expect(status).toBeGreaterThanOrEqual(1.5);
      expect(metric).toBeGreaterThanOrEqual(1.5);
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

  it('503 naming the failed check until migrated; 503 while PostgreSQL or Redis is down; 200 when back', async () => {
    const url = `${s.url}/readyz`;
    const unmigrated = await fetch(url);
    expect(unmigrated.status).toBe(503);
    const body = await unmigrated.json();
    expect(body).toMatchObject({ status: 'unavailable', failed: ['migrations'] });
    expect(body.checks.migrations.error).toMatch(/pending migrations: \d+_init/);

    await migrate(pg.url);
    expect((await fetch(url)).status).toBe(200);

    await pg.stop();
    const down = await fetch(url);
    expect(down.status).toBe(503);
    // Migrations were found applied once; that is not checked again.
    expect((await down.json()).failed).toEqual(['postgres']);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);

    await pg.start();
    const back = await waitForStatus(url, 200);
    expect(back.status).toBe(200);

    await redisServer.kill();
    const noRedis = await fetch(url);
    expect(noRedis.status).toBe(503);
    expect((await noRedis.json()).failed).toEqual(['redis']);
    await redisServer.start();
    expect((await waitForStatus(url, 200)).status).toBe(200);
  });
});
