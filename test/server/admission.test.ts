// Admission control (src/balances/admission.ts) through POST /v1/events: an event
// whose user has not the uses left is refused with status insufficient and never
// enqueued; concurrent requests on one key never both spend the same uses; an
// unknown balance follows METER_ADMISSION_UNKNOWN; test mode is admitted.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DouyinMarketClient } from '../../src/douyin/index.js';
import { createProducer, InsufficientUsesError } from '../../src/index.js';
import { insertEvents } from '../../src/ledger/events.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { simulatorClient } from '../support/douyin.js';
import { redisUrl } from '../support/services.js';
import { API_KEY, event, startTestServer, type TestServer } from './helpers.js';

let sim: RunningSimulator;
let redis: Redis;
let client: DouyinMarketClient;
let accept: TestServer; // METER_ADMISSION_UNKNOWN=accept
let reject: TestServer; // METER_ADMISSION_UNKNOWN=reject
beforeAll(async () => {
  sim = await startSimulator();
  redis = new Redis(redisUrl());
  client = simulatorClient(sim, redis, 'admission');
  accept = await startTestServer({
    label: 'admission',
    douyin: client,
    admission: { unknown: 'accept', holdSec: 60 },
  });
  reject = await startTestServer({
    label: 'admission_reject',
    databaseUrl: accept.databaseUrl,
    douyin: client,
    admission: { unknown: 'reject', holdSec: 60 },
  });
});
afterAll(async () => {
  await reject?.close();
  await accept?.close();
  await client?.close();
  await sim?.close();
  redis?.disconnect();
});

const queued = async (s: TestServer) => {
  const jobs = await s.queues.events.getJobs(['waiting', 'delayed', 'active', 'completed', 'prioritized']);
  return jobs.flatMap((j) => (Array.isArray(j.data.events) ? j.data.events : [j.data.events]));
};

describe('admission control', () => {
  it('concurrent requests on one key never spend the same uses: 10 uses admit exactly 3 events of 3', async () => {
    sim.setBalance({ openId: 'u-adm', serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => accept.postEvents(event('u-adm', 3)).then((r) => r.json())),
    );
    const statuses = answers.map((a) => a.results[0].status);
    expect(statuses.filter((x) => x === 'accepted')).toHaveLength(3);
    expect(statuses.filter((x) => x === 'insufficient')).toHaveLength(7);
    const refused = answers.find((a) => a.results[0].status === 'insufficient');
    expect(refused).toMatchObject({ accepted: 0, insufficient: 1 });
    expect(refused.results[0].errors[0]).toMatch(/insufficient remaining uses: 1 available, 3 asked/);
    // Nothing refused was enqueued.
    const ids = new Set(
      answers.filter((a) => a.results[0].status === 'accepted').map((a) => a.results[0].eventId),
    );
    const inQueue = (await queued(accept)).filter((e) => e.openId === 'u-adm');
    expect(inQueue.map((e) => e.eventId).sort()).toEqual([...ids].sort());
  });

  it('admits a request’s events in order while they fit', async () => {
    sim.setBalance({ openId: 'u-order', serviceId: 's1', serviceModeId: 'm1', remaining: 5 });
    const res = await accept.postEvents([event('u-order', 2), event('u-order', 4), event('u-order', 3)]);
    expect(res.status).toBe(202);
    expect((await res.json()).results.map((r: { status: string }) => r.status)).toEqual([
      'accepted',
      'insufficient',
      'accepted',
    ]);
  });

  it('holds last until the events are in the ledger, counted once; a retried event is admitted without spending again', async () => {
    sim.setBalance({ openId: 'u-hold', serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
    const first = Array.from({ length: 5 }, () => event('u-hold', 1));
    expect((await (await accept.postEvents(first)).json()).accepted).toBe(5);
    // The worker writes them to the ledger (here by hand, as it would).
    const keyId = [
      ...(
        await upsertKeys(accept.db, [
          { openId: 'u-hold', serviceId: 's1', serviceModeId: 'm1', isTestEnv: false },
        ])
      ).values(),
    ][0]!;
    await insertEvents(
      accept.db,
      first.map((e) => ({
        eventId: e.eventId,
        keyId,
        count: 1,
        occurredAt: null,
        enqueuedAt: null,
        attributes: null,
      })),
    );
    // 10 − 5 pending = 5 left (not 0: the holds of events in the ledger no longer count).
    const more = Array.from({ length: 5 }, () => event('u-hold', 1));
    expect((await (await accept.postEvents(more)).json()).accepted).toBe(5);
    // A retry of an admitted event (not in the ledger yet) is admitted again, spending nothing more.
    const retry = await (await accept.postEvents(more[0])).json();
    expect(retry.results[0].status).toBe('accepted');
    expect((await (await accept.postEvents(event('u-hold', 1))).json()).results[0].status).toBe(
      'insufficient',
    );
  });

  it('an unknown balance follows the policy; test mode is admitted', async () => {
    sim.setFaults({ http5xxRate: 1 });
    try {
      const a = await (await accept.postEvents(event('u-unknown', 1))).json();
      expect(a.results[0].status).toBe('accepted');
      const r = await (await reject.postEvents(event('u-unknown2', 1))).json();
      expect(r.results[0]).toMatchObject({ status: 'insufficient' });
      expect(r.results[0].errors[0]).toMatch(/unknown/);
      const t = await (await reject.postEvents(event('u-test', 5, { isTestEnv: true }))).json();
      expect(t.results[0].status).toBe('accepted');
    } finally {
      sim.setFaults({ http5xxRate: 0 });
    }
  });

  it('the SDK, given the server, is admitted the same way: a refused record rejects, nothing of it enqueued', async () => {
    sim.setBalance({ openId: 'u-sdk-adm', serviceId: 's1', serviceModeId: 'm1', remaining: 5 });
    const producer = createProducer({
      connection: redis,
      prefix: accept.prefix,
      admission: { url: accept.url, apiKey: API_KEY },
    });
    try {
      const first = event('u-sdk-adm', 3);
      await producer.record(first);
      const second = event('u-sdk-adm', 3);
      const err = await producer.record(second).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InsufficientUsesError);
      expect((err as InsufficientUsesError).refused).toEqual([
        { eventId: second.eventId, reason: expect.stringMatching(/2 available, 3 asked/) },
      ]);
      const inQueue = (await queued(accept)).filter((e) => e.openId === 'u-sdk-adm').map((e) => e.eventId);
      expect(inQueue).toEqual([first.eventId]);
    } finally {
      await producer.close();
    }
  });

  it('answers within its budget: keys not reached in time follow the unknown-balance policy', async () => {
    const users = Array.from({ length: 6 }, (_, i) => `u-slow-${i}`);
    for (const openId of users)
      sim.setBalance({ openId, serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
    const slow = await startTestServer({
      label: 'admission_budget',
      databaseUrl: accept.databaseUrl,
      douyin: client,
      admission: { unknown: 'reject', holdSec: 60, budgetMs: 300 },
    });
    sim.setFaults({ latencyMs: 400 });
    try {
      const t0 = performance.now();
      const body = await (await slow.postEvents(users.map((u) => event(u, 1)))).json();
      // Four keys at a time, each reading Douyin (400 ms): the first four in time, the rest not.
      expect(body.results.map((r: { status: string }) => r.status)).toEqual([
        'accepted',
        'accepted',
        'accepted',
        'accepted',
        'insufficient',
        'insufficient',
      ]);
      expect(body.results[5].errors[0]).toMatch(/ran out of time/);
      expect(performance.now() - t0).toBeLessThan(8_000); // inside the server's 10 s answer
    } finally {
      sim.setFaults({ latencyMs: 0 });
      await slow.close();
    }
  });
});
