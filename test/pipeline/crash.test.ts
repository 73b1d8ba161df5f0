// Workers killed with SIGKILL at random moments while events flow; totals exact.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, it } from 'vitest';

import { exited, fundUsers, makeEvents, type Pipeline, startPipeline } from '../support/pipeline.js';

describe('crashes', () => {
  let p: Pipeline;
  const users = Array.from({ length: 30 }, (_, i) => `cu${i}`);
  beforeAll(async () => {
    p = await startPipeline({ label: 'crash', faults: { latencyMs: 10, appliedButLostRate: 0.05 } });
    fundUsers(p.sim, users);
  });
  afterAll(async () => p.close());

  it('survives repeated SIGKILLs of one and then two workers running at once', async () => {
    let round = 0;
    const flow = (async () => {
      for (; round < 24; round++) {
        await p.send(makeEvents(150, users, `k${round}`));
        await sleep(150);
      }
    })();
    // Phase 1: one worker, killed 4 times at random moments.
    for (let i = 0; i < 4; i++) {
      const w = p.spawnWorker();
      await sleep(400 + Math.random() * 900);
      w.kill('SIGKILL');
      await exited(w);
    }
    // Phase 2: two workers at once, one of them killed repeatedly.
    const steady = p.spawnWorker();
    for (let i = 0; i < 3; i++) {
      const w = p.spawnWorker();
      await sleep(400 + Math.random() * 900);
      w.kill('SIGKILL');
      await exited(w);
    }
    await flow;
    p.spawnWorker();
    await p.waitUntilSettled(120_000);
    await p.expectExactTotals();
    steady.kill('SIGTERM');
    await exited(steady);
  });
});
