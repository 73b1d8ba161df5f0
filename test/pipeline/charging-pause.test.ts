// Pausing charging deployment-wide: no DecrUserRemainTimes call starts while paused,
// a call already out finishes and settles, ingestion goes on, and after the resume
// every use is charged exactly once. Real worker, Redis, PostgreSQL, simulator.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';

import { chargingState, pauseCharging, resumeCharging } from '../../src/queue/charging-pause.js';
import { createQueues } from '../../src/queue/queues.js';
import { countWithStatus } from '../support/ledger.js';
import { usage, waitUntil } from '../support/notify.js';
import { fundUsers, type Pipeline, startPipeline } from '../support/pipeline.js';

const DECR = '/market/service/user/remaintimes/decr/';

describe('pausing charging', () => {
  let p: Pipeline | undefined;
  afterEach(async () => {
    await p?.close();
    p = undefined;
  });

  it('lets the call in flight finish, starts none while paused, keeps ingesting, and charges all once after the resume', async () => {
    p = await startPipeline({ label: 'pause', faults: { latencyMs: 1_500 } });
    const users = Array.from({ length: 12 }, (_, i) => `pu${i}`);
    fundUsers(p.sim, users);
    const queues = createQueues(p.redis, p.env.REDIS_PREFIX!);
    try {
      await p.startWorker();
      await p.send([usage('first', 'pu0', 2)]);
      const calls = () => p!.sim.state().calls.byPath[DECR] ?? 0;
      await waitUntil('the first call out', async () => (calls() === 1 ? true : undefined));

      const paused = await pauseCharging(queues.charge, p.redis, p.env.REDIS_PREFIX!, {
        by: 'test',
        reason: 'drill',
      });
      expect(paused).toMatchObject({ paused: true, by: 'test', reason: 'drill' });
      expect(await chargingState(queues.charge, p.redis, p.env.REDIS_PREFIX!)).toMatchObject({
        paused: true,
        by: 'test',
      });
      // Ingestion goes on while paused.
      await p.send(users.map((u, i) => usage(`later-${i}`, u, 1)));
      await waitUntil('every event in the ledger', async () =>
        (await p!.db.usageEvent.count()) === users.length + 1 ? true : undefined,
      );
      // The call that was out finishes and settles its batch.
      await waitUntil('the first batch charged', async () =>
        (await p!.db.chargeBatch.count({ where: { status: 'charged' } })) === 1 ? true : undefined,
      );
      await sleep(3_000); // several batching windows: nothing new starts
      expect(calls()).toBe(1);
      expect(await countWithStatus(p.db, 'charged')).toBe(1);

      expect((await resumeCharging(queues.charge, p.redis, p.env.REDIS_PREFIX!)).state).toEqual({
        paused: false,
      });
      await p.waitUntilSettled(60_000);
      await p.expectExactTotals();
      // One call per user: the batches waited, whole, for the resume.
      expect(calls()).toBe(users.length + 1);
    } finally {
      await queues.close();
    }
  }, 120_000);
});
