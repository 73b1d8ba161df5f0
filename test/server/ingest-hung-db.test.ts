// A PostgreSQL that hangs (accepts nothing, refuses nothing) must not hold
// ingestion up: producers need only Redis. The ledger lookup gives up after its
// timeout and the events are accepted from Redis alone.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { type PostgresServer, startPostgres } from '../../src/devservices/postgres.js';
import { event, startTestServer, type TestServer } from './helpers.js';

/** The postmaster and every backend it forked. */
function clusterPids(pg: PostgresServer): number[] {
  const postmaster = Number(readFileSync(join(pg.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  const children = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster;
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
  return [postmaster, ...children];
}

describe('ingestion with a hung PostgreSQL', () => {
  let pg: PostgresServer;
  let s: TestServer;
  let frozen: number[] = [];
  beforeAll(async () => {
    pg = await startPostgres();
    await migrate(pg.url);
    s = await startTestServer({ label: 'hung', databaseUrl: pg.url });
  });
  afterAll(async () => {
    for (const pid of frozen) process.kill(pid, 'SIGCONT');
    await s?.close();
    await pg?.destroy();
  });

  it('answers 202 within about the lookup timeout, with every event accepted and in Redis', async () => {
    expect((await s.postEvents([event('h0')])).status).toBe(202); // the pool is connected
    frozen = clusterPids(pg);
    for (const pid of frozen) process.kill(pid, 'SIGSTOP');

    const t0 = Date.now();
    const res = await s.postEvents([event('h1'), event('h2')]);
    const ms = Date.now() - t0;
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ accepted: 2, duplicates: 0, rejected: 0 });
    expect(ms).toBeGreaterThanOrEqual(900); // it did wait for the lookup...
    expect(ms).toBeLessThan(5_000); // ...but not for the 10 s request timeout
    const waiting = await s.queues.events.getJobCounts('waiting');
    expect(waiting.waiting).toBe(2); // h0's job and this one

    for (const pid of frozen) process.kill(pid, 'SIGCONT');
    frozen = [];
  });
});
