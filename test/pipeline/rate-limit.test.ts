// The deployment-wide limiter keeps two workers under the platform's QPS.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fundUsers, makeEvents, type Pipeline, startPipeline } from '../support/pipeline.js';

describe('rate limit', () => {
  let p: Pipeline;
  const users = Array.from({ length: 120 }, (_, i) => `lu${i}`);
  beforeAll(async () => {
    p = await startPipeline({ label: 'qps', faults: { qps: 40, latencyMs: 5 }, env: { DOUYIN_QPS: '40' } });
    fundUsers(p.sim, users);
    // Separate processes, as in production (and not sharing the simulator's event loop).
    p.spawnWorker();
    p.spawnWorker();
  });
  afterAll(async () => p.close());

  it('never exceeds the configured QPS across two workers, and batches grow while they wait', async () => {
    for (let i = 0; i < 4; i++) await p.send(makeEvents(600, users, `q${i}`));
    await p.waitUntilSettled(90_000);
    await p.expectExactTotals();
    const calls = p.sim.state().calls;
    expect(calls.maxPerSecond).toBeLessThanOrEqual(40);
    expect(calls.rateLimited).toBeLessThanOrEqual(3);
    // 2,400 events over 120 keys: with waiting, far fewer calls than events.
    expect(calls.total).toBeLessThan(2_400 / 4);
  });
});
