// The worker process's own /metrics (METRICS_PORT): batches, Douyin calls, rate-limit
// waits and ledger writes move with the traffic it handles.

import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, fundUsers, makeEvents, type Pipeline, startPipeline } from '../support/pipeline.js';

/** The sum of a metric's samples whose labels include all of `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const has = Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`));
    if (has) sum += Number(m[3]);
  }
  return sum;
}

async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

describe('worker metrics', () => {
  let p: Pipeline;
  let port: number;
  beforeAll(async () => {
    p = await startPipeline({ label: 'wmetrics', faults: { latencyMs: 5 } });
    fundUsers(p.sim, ['m1', 'm2', 'm3']);
    port = await freePort();
  });
  afterAll(async () => p.close());

  it('serves /metrics on METRICS_PORT, and its counters move with the events it charges', async () => {
    const child = p.spawnWorker({ METRICS_PORT: String(port) });
    const scrape = async () => {
      for (let i = 0; ; i++) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/metrics`);
          expect(res.status).toBe(200);
          return await res.text();
        } catch (err) {
          if (i > 300) throw err; // the worker is still starting (30 s at most)
          await sleep(100);
        }
      }
    };
    const before = await scrape();
    expect(sample(before, 'um_batches_total', { outcome: 'charged' })).toBe(0);

    const events = makeEvents(300, ['m1', 'm2', 'm3'], 'wm');
    await p.send(events);
    await p.waitUntilSettled();
    await p.expectExactTotals();
    const batches = await p.db.chargeBatch.count({ where: { status: 'charged' } });

    const after = await scrape();
    // At least: a charge run taken over after a stall may call (and count) again.
    expect(sample(after, 'um_batches_total', { outcome: 'charged' })).toBeGreaterThanOrEqual(batches);
    expect(sample(after, 'um_events_total', { result: 'recorded' })).toBe(events.length);
    expect(
      sample(after, 'um_douyin_call_duration_seconds_count', {
        method: 'decrUserRemainTimes',
        outcome: 'success',
      }),
    ).toBeGreaterThanOrEqual(batches);
    expect(sample(after, 'um_rate_limit_wait_seconds_count')).toBeGreaterThanOrEqual(batches);
    expect(sample(after, 'um_process_process_resident_memory_bytes')).toBeGreaterThan(0);

    child.kill('SIGTERM');
    await exited(child);
  });
});
