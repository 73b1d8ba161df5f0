// The worker's key caches are bounded: a client sending ever new openIds cannot
// grow them past keyCacheSize, and every event is still recorded and charged exactly.
import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventRecorder } from '../../src/metering/record-events.js';
import { createQueues, type EventsJobData, type MeterQueues } from '../../src/queue/queues.js';
import { fundUsers, makeEvents, type Pipeline, startPipeline } from '../support/pipeline.js';

describe('EventRecorder key caches', () => {
  let p: Pipeline;
  let queues: MeterQueues;
  beforeAll(async () => {
    p = await startPipeline({ label: 'key_cache' });
    queues = createQueues(p.redis, p.env.REDIS_PREFIX!);
    await p.startWorker(); // charges what the processor below writes
  });
  afterAll(async () => {
    await queues.close();
    await p.close();
  });

  it('hold at most keyCacheSize keys after 1,000 distinct ones, and every event is charged', async () => {
    const processor = new EventRecorder({
      db: p.db,
      chargeQueue: queues.charge,
      windowMs: 200,
      keyCacheSize: 10,
    });
    const users = Array.from({ length: 1_000 }, (_, i) => `kc-${i}`);
    fundUsers(p.sim, users);
    let jobId = 0;
    const ingest = async (events: ReturnType<typeof makeEvents>) => {
      for (let i = 0; i < events.length; i += 100) {
        const part = events.slice(i, i + 100).map((e) => ({ ...e, isTestEnv: false }));
        const data: EventsJobData = { events: part, source: 'sdk' };
        await processor.process({
          id: String(++jobId),
          timestamp: Date.now(),
          attemptsMade: 0,
          data,
        } as Job<EventsJobData>);
        for (const e of part) p.sent.set(e.eventId, e);
        const sizes = processor.cacheSizes();
        expect(sizes.keyIds).toBeLessThanOrEqual(10);
        expect(sizes.scheduledAt).toBeLessThanOrEqual(10);
      }
    };
    await ingest(makeEvents(1_000, users, 'kc-a'));
    // The same keys again, long evicted: their ids are looked up anew, not duplicated.
    await ingest(makeEvents(1_000, users, 'kc-b'));
    expect(await p.db.meterKey.count()).toBe(1_000);
    await p.waitUntilSettled();
    await p.expectExactTotals();
  });
});
