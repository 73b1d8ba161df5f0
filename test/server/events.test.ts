// POST /v1/events: per-event results, limits, errors, and (with the worker and the
// Douyin simulator) the valid events end up charged, exactly.

import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsById } from '../../src/ledger/events.js';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { countWithStatus } from '../support/ledger.js';
import { redisUrl } from '../support/services.js';
import { event, repoRoot, startTestServer, type TestServer } from './helpers.js';

const queued = async (s: TestServer) => {
  const c = await s.queues.events.getJobCounts(
    'waiting',
    'active',
    'delayed',
    'completed',
    'failed',
    'prioritized',
  );
  return Object.values(c).reduce((a, b) => a + b, 0);
};

describe('POST /v1/events', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ label: 'events' });
  });
  afterAll(async () => s?.close());

  it('answers 202 with one result per event, in order, for a mix of valid and invalid events', async () => {
    const a = event('u1', 2);
    const b = event('u2', 3);
    const res = await s.postEvents([
      a,
      { ...event('u1'), count: 0 },
      b,
      { eventId: 'no-fields' },
      a,
      'not an object',
      { ...event('u3'), extra: true },
    ]);
    expect(res.status).toBe(202);
    const body = await res.json();
    expect(body).toMatchObject({ accepted: 2, duplicates: 1, rejected: 4 });
    expect(body.results.map((r: { index: number; status: string }) => [r.index, r.status])).toEqual([
      [0, 'accepted'],
      [1, 'rejected'],
      [2, 'accepted'],
      [3, 'rejected'],
      [4, 'duplicate'],
      [5, 'rejected'],
      [6, 'rejected'],
    ]);
    expect(body.results[0].eventId).toBe(a.eventId);
    expect(body.results[1].errors).toEqual([expect.stringMatching(/^count: /)]);
    expect(body.results[3].errors.join(' ')).toMatch(/openId/);
    expect(body.results[6].errors.join(' ')).toMatch(/extra/);
  });

  it('takes a single event object too', async () => {
    const res = await s.postEvents(event('u9', 7));
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({
      accepted: 1,
      duplicates: 0,
      insufficient: 0,
      rejected: 0,
      results: [{ index: 0 }],
    });
  });

  it('refuses 1,001 events with 400 and enqueues nothing', async () => {
    const before = await queued(s);
    const res = await s.postEvents(Array.from({ length: 1_001 }, () => event('big')));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: { code: 'too_many_events', message: expect.stringMatching(/1000/) },
    });
    expect(await queued(s)).toBe(before);
    // 1,000 is fine.
    const ok = await s.postEvents(Array.from({ length: 1_000 }, () => event('big')));
    expect(ok.status).toBe(202);
    expect((await ok.json()).accepted).toBe(1_000);
    expect(await queued(s)).toBeGreaterThan(before);
  });

  it('empty array, non-object body, malformed JSON, oversize body and wrong content type get JSON errors', async () => {
    const cases: [string, unknown, Record<string, string>, number, string][] = [
      ['empty array', [], {}, 400, 'invalid_request'],
      ['number', 42, {}, 400, 'invalid_request'],
      ['malformed', '{"eventId": "x", ', {}, 400, 'malformed_json'],
      [
        'oversize',
        JSON.stringify([{ ...event(), attributes: { a: 'x'.repeat(1_100_000) } }]),
        {},
        413,
        'payload_too_large',
      ],
      ['form', 'a=1', { 'content-type': 'application/x-www-form-urlencoded' }, 415, 'unsupported_media_type'],
    ];
    for (const [name, body, headers, status, code] of cases) {
      const res = await s.postEvents(body, headers);
      const json = await res.json();
      expect({ name, status: res.status, code: json.error?.code }).toEqual({ name, status, code });
      expect(typeof json.error.message).toBe('string');
    }
  });

  it('unknown routes answer a JSON 404', async () => {
    const res = await fetch(`${s.url}/v1/nope`);
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe('not_found');
  });
});

describe('POST /v1/events end to end with the worker and the Douyin simulator', () => {
  let s: TestServer;
  let sim: RunningSimulator;
  let worker: ChildProcess;
  beforeAll(async () => {
    s = await startTestServer({ label: 'events_e2e' });
    sim = await startSimulator({ clientKey: 'k', clientSecret: 'sk' });
    for (const u of ['e1', 'e2', 'e3'])
      sim.setBalance({ openId: u, serviceId: 's1', serviceModeId: 'm1', remaining: 1e6 });
    worker = spawn(process.execPath, ['--import', 'tsx', 'workers/worker.ts'], {
      cwd: repoRoot,
      env: {
        ...process.env,
        DOUYIN_BASE_URL: sim.url,
        DOUYIN_CLIENT_KEY: 'k',
        DOUYIN_CLIENT_SECRET: 'sk',
        REDIS_URL: redisUrl(),
        REDIS_PREFIX: s.prefix,
        DATABASE_URL: s.databaseUrl,
        METER_BATCH_WINDOW_MS: '200',
        METER_RETRY_BASE_MS: '50',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await sim?.close();
    await s?.close();
  });

  it('charges exactly the valid events; a resend is reported duplicate and not charged again', async () => {
    const valid = [
      ...Array.from({ length: 40 }, (_, i) => event(['e1', 'e2', 'e3'][i % 3], 1 + (i % 4))),
      event('e1', 1000),
    ];
    const invalid = [
      { ...event('e1'), count: -1 },
      { ...event('e2'), serviceId: '' },
    ];
    const res = await s.postEvents([...valid.slice(0, 20), ...invalid, ...valid.slice(20)]);
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ accepted: valid.length, rejected: 2, duplicates: 0 });

    const expected = new Map<string, number>();
    for (const e of valid) expected.set(e.openId, (expected.get(e.openId) ?? 0) + e.count);
    const deducted = () =>
      new Map(
        sim
          .state()
          .balances.map((b) => [b.openId, b.deducted] as const)
          .filter(([, d]) => d > 0),
      );
    const deadline = Date.now() + 40_000;
    while (Date.now() < deadline) {
      const settled = await countWithStatus(s.db, 'charged');
      if (settled === valid.length) break;
      await sleep(200);
    }
    expect(deducted()).toEqual(expected);
    expect(await countWithStatus(s.db, 'charged')).toBe(valid.length);
    expect(await s.db.usageEvent.count()).toBe(valid.length);

    // Sent again (a producer retry): the ledger knows them, nothing more is charged.
    const again = await s.postEvents(valid.slice(0, 5));
    expect(await again.json()).toMatchObject({ accepted: 0, duplicates: 5 });
    await sleep(1_000);
    expect(deducted()).toEqual(expected);
  });

  it('rejects an attribute PostgreSQL cannot store, with its reason, and still charges the good neighbour', async () => {
    sim.setBalance({ openId: 'e4', serviceId: 's1', serviceModeId: 'm1', remaining: 1e6 });
    const good = event('e4', 7, { attributes: { plan: 'pro 😀' } });
    const nul = event('e4', 5, { attributes: { note: 'a\u0000b' } });
    const surrogate = event('e4', 3, { attributes: { ['k\ud800']: 'v' } });
    const res = await s.postEvents([nul, good, surrogate]);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({
      accepted: 1,
      duplicates: 0,
      insufficient: 0,
      rejected: 2,
      results: [
        {
          index: 0,
          eventId: nul.eventId,
          status: 'rejected',
          errors: ['attributes.note: attribute values must not contain U+0000 or an unpaired surrogate'],
        },
        { index: 1, eventId: good.eventId, status: 'accepted' },
        {
          index: 2,
          eventId: surrogate.eventId,
          status: 'rejected',
          errors: ['attributes.k\\ud800: attribute keys must not contain U+0000 or an unpaired surrogate'],
        },
      ],
    });
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const [e] = await eventsById(s.db, [good.eventId]);
      if (e?.status === 'charged') break;
      await sleep(200);
    }
    expect(await eventsById(s.db, [good.eventId])).toEqual([
      expect.objectContaining({ status: 'charged', count: 7 }),
    ]);
    expect(sim.state().balances.find((b) => b.openId === 'e4')?.deducted).toBe(7);
    expect(
      await s.db.usageEvent.count({ where: { eventId: { in: [nul.eventId, surrogate.eventId] } } }),
    ).toBe(0);
  });
});
