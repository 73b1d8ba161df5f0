// Every fault the simulator has, on at once: the totals still match exactly.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fundUsers, makeEvents, type Pipeline, startPipeline } from '../support/pipeline.js';

describe('faults', () => {
  let p: Pipeline;
  const users = Array.from({ length: 20 }, (_, i) => `fu${i}`);
  beforeAll(async () => {
    p = await startPipeline({
      label: 'faults',
      faults: {
        latencyMs: 5,
        busyRate: 0.15,
        http5xxRate: 0.1,
        resetRate: 0.1,
        hangRate: 0.05,
        hangMs: 3_000,
        appliedButLostRate: 0.15,
      },
      env: { DOUYIN_TIMEOUT_MS: '800' },
    });
    fundUsers(p.sim, users);
    await p.startWorker();
  });
  afterAll(async () => p.close());

  it('charges the unique events exactly, per user, through busy, 5xx, resets, hangs and lost answers', async () => {
    for (let round = 0; round < 5; round++) {
      await p.send(makeEvents(400, users, `f${round}`));
      await sleep(300);
    }
    await p.waitUntilSettled(90_000);
    await p.expectExactTotals();
    const calls = p.sim.state().calls;
    // The faults really happened, including answers lost after the deduction.
    expect(calls.appliedButLost).toBeGreaterThan(0);
    expect(calls.busy + calls.http5xx + calls.resets + calls.hangs).toBeGreaterThan(0);
    expect(calls.replays).toBeGreaterThan(0);
    const failed = await p.db.callAttempt.count({ where: { outcome: 'error' } });
    expect(failed).toBeGreaterThan(0);
  });
});
