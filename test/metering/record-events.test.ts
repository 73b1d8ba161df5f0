// The ingest processor on events that bypassed the API: each one the ledger (or the
// worker) refuses is recorded once in rejected_event with its reason, the job's
// other events are written, and the job completes.
import type { Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { EventRecorder } from '../../src/metering/record-events.js';
import { createQueues, type EventsJobData, type MeterQueues } from '../../src/queue/queues.js';
import { createTestDatabase, redisUrl, uniquePrefix } from '../support/services.js';

let db: PrismaClient;
let redis: Redis;
let queues: MeterQueues;
beforeAll(async () => {
  db = createPrisma(await createTestDatabase('ingest_processor'));
  redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  queues = createQueues(redis, uniquePrefix('record-events'));
});
afterAll(async () => {
  await queues.close();
  await db.$disconnect();
  redis.disconnect();
});

const ev = (eventId: string, extra: Record<string, unknown> = {}) => ({
  eventId,
  openId: 'p1',
  serviceId: 's1',
  serviceModeId: 'm1',
  count: 2,
  isTestEnv: false,
  ...extra,
});

/** A job as the worker gets it from BullMQ. */
const job = (id: string, events: unknown, attemptsMade = 0) =>
  ({
    id,
    timestamp: 1_700_000_000_000,
    attemptsMade,
    data: { events, source: 'sdk' },
  }) as unknown as Job<EventsJobData>;

describe('EventRecorder with events the ledger refuses', () => {
  it('records each refused event once, even when the job is retried, and writes the others', async () => {
    const processor = new EventRecorder({ db, chargeQueue: queues.charge, windowMs: 200 });
    const events = [
      ev('ok-1'),
      ev('nul-attr', { attributes: { note: 'a\u0000b' } }),
      ev('ok-2', { attributes: { note: 'fine 😀' } }),
      ev('negative', { count: -5 }),
      ev('too-big', { count: 3_000_000_000 }),
      null,
      ev('nul-open', { openId: 'p\u0000' }),
      ev('no-flag', { isTestEnv: undefined }),
      ev('bad\u0000id'),
      ev('ok-3', { openId: 'p2' }),
    ];
    const first = await processor.process(job('7', events));
    expect(first).toEqual({ recorded: 3, duplicates: 0, rejected: 7 });
    // A retry (the worker died before completing the job) records nothing twice.
    expect(await processor.process(job('7', events, 1))).toEqual({ recorded: 0, duplicates: 3, rejected: 7 });

    expect((await db.usageEvent.findMany({ orderBy: { eventId: 'asc' } })).map((e) => e.eventId)).toEqual([
      'ok-1',
      'ok-2',
      'ok-3',
    ]);
    const rejected = await db.rejectedEvent.findMany({ orderBy: { jobIndex: 'asc' } });
    expect(rejected.map((r) => [r.jobIndex, r.eventId, r.reason])).toEqual([
      [1, 'nul-attr', expect.stringMatching(/^22P05 .*\\u0000 cannot be converted to text/)],
      [3, 'negative', 'count must be a positive integer'],
      [4, 'too-big', expect.stringMatching(/^22003 /)],
      [5, null, 'not an event object'],
      [6, 'nul-open', expect.stringMatching(/^22021 invalid byte sequence/)],
      [7, 'no-flag', expect.stringMatching(/^23502 .*is_test_env/)],
      [8, 'bad\\u0000id', expect.stringMatching(/^22021 /)],
    ]);
    expect(rejected.every((r) => r.source === 'sdk' && r.jobKey === '7@1700000000000')).toBe(true);
    // The raw event is kept, as JSON text that round-trips to what was sent.
    expect(JSON.parse(rejected[0]!.raw)).toEqual(events[1]);
    expect(rejected[3]!.raw).toBe('null');
  });

  it('rejects a job whose events are not a list, and completes it', async () => {
    const processor = new EventRecorder({ db, chargeQueue: queues.charge, windowMs: 200 });
    expect(await processor.process(job('8', 'garbage'))).toEqual({ recorded: 0, duplicates: 0, rejected: 1 });
    const r = await db.rejectedEvent.findFirstOrThrow({ where: { jobKey: '8@1700000000000' } });
    expect([r.raw, r.reason]).toEqual(['"garbage"', 'not an event object']);
  });
});
