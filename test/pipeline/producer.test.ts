// The producer SDK: validation before anything is enqueued, durability on resolve.
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidEventsError } from '../../src/producer/errors.js';
import { createProducer } from '../../src/producer/producer.js';
import { createQueues } from '../../src/queue/queues.js';
import { redisUrl, uniquePrefix } from '../support/services.js';

const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
afterAll(() => redis.disconnect());
const ev = (i: number) => ({ eventId: `p${i}`, openId: 'u', serviceId: 's', serviceModeId: 'm', count: 1 });

describe('producer', () => {
  it('resolves once the events are in Redis, many per job', async () => {
    const prefix = uniquePrefix('prod');
    const producer = createProducer({ connection: redis, prefix, lingerMs: 20 });
    await Promise.all(Array.from({ length: 1_200 }, (_, i) => producer.record(ev(i))));
    const queues = createQueues(redis, prefix);
    const jobs = await queues.events.getWaiting(0, 100);
    expect(jobs.reduce((n, j) => n + j.data.events.length, 0)).toBe(1_200);
    expect(jobs.length).toBeLessThanOrEqual(4);
    await producer.close();
    await queues.close();
  });

  it('rejects a call with invalid events listing each problem, and enqueues none of it', async () => {
    const prefix = uniquePrefix('prod');
    const producer = createProducer({ connection: redis, prefix });
    const err = await producer
      .recordMany([ev(1), { ...ev(2), count: 0 }, { ...ev(3), openId: '' }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidEventsError);
    const problems = (err as InvalidEventsError).problems;
    expect(problems.map((p) => [p.index, p.eventId])).toEqual([
      [1, 'p2'],
      [2, 'p3'],
    ]);
    expect(problems[0]!.errors.join()).toMatch(/count/);
    await producer.flush();
    const queues = createQueues(redis, prefix);
    expect(await queues.events.getWaitingCount()).toBe(0);
    await producer.close();
    await expect(producer.record(ev(9))).rejects.toThrow(/closed/);
    await queues.close();
  });
});
