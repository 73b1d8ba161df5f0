// The operator API over a real ledger: reads (status, batches with keyset
// pagination, batch details, time series, Douyin health), replays with their audit
// rows, and input validation. Ledger rows are written directly (what the worker
// would have written) so every number asserted is known.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DouyinMarketClient } from '../../src/douyin/index.js';
import type { BatchStatus } from '../../src/generated/prisma/enums.js';
import { formBatch } from '../../src/ledger/batches.js';
import { insertEvents } from '../../src/ledger/events.js';
import { keyHasPendingEvents } from '../../src/ledger/keys.js';
import type { OperatorDouyinApi } from '../../src/server/douyin-api.js';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { simulatorClient } from '../support/douyin.js';
import { redisUrl } from '../support/services.js';
import { basic, startTestServer, type TestServer } from './helpers.js';

let s: TestServer;
let n = 0;

async function key(openId: string, serviceModeId = 'm1') {
  return s.db.meterKey.upsert({
    where: {
      openId_serviceId_serviceModeId_isTestEnv: { openId, serviceId: 's1', serviceModeId, isTestEnv: false },
    },
    create: { openId, serviceId: 's1', serviceModeId, isTestEnv: false },
    update: {},
  });
}

/**
 * A batch with its events and attempts, as the worker records them: the events
 * through the ledger's insert, the batch formed over them, then given its outcome.
 */
async function batch(
  openId: string,
  status: Exclude<BatchStatus, 'partial' | 'voided'>,
  counts: number[],
  attempts: { outcome: 'success' | 'error'; logid: string; kind?: string; ms?: number }[] = [],
) {
  const k = await key(openId);
  n += 1;
  const total = counts.reduce((a, b) => a + b, 0);
  if (await keyHasPendingEvents(s.db, k.id)) throw new Error(`fixture: key of ${openId} has events pending`);
  await insertEvents(
    s.db,
    counts.map((count, i) => ({
      eventId: `api-${n}-${i}`,
      keyId: k.id,
      count,
      occurredAt: null,
      enqueuedAt: null,
      attributes: null,
    })),
  );
  const { batch: formed } = await formBatch(s.db, {
    keyId: k.id,
    outTradeNo: `otn-${n}`,
    maxEvents: counts.length,
    maxCount: total,
    deadlineSec: 60,
  });
  expect(formed).toMatchObject({ count: total, eventCount: counts.length });
  const b = await s.db.chargeBatch.update({
    where: { id: formed!.id },
    data: {
      status,
      attempts: attempts.length,
      chargedCount: status === 'charged' ? total : 0,
      deadReason: status === 'dead' ? 'deadline passed after 3 attempts' : null,
      lastError: status === 'dead' ? 'HTTP 503' : null,
      lastErrorKind: status === 'dead' ? 'transient' : null,
      finishedAt: status === 'open' ? null : new Date(),
    },
  });
  await s.db.callAttempt.createMany({
    data: attempts.map((a, i) => ({
      batchId: b.id,
      attemptNo: i + 1,
      outTradeNo: b.outTradeNo,
      count: total,
      startedAt: new Date(),
      durationMs: a.ms ?? 10,
      outcome: a.outcome,
      errorKind: a.outcome === 'error' ? (a.kind ?? 'transient') : null,
      httpStatus: a.outcome === 'error' ? 503 : 200,
      description: a.outcome === 'error' ? 'service unavailable' : '',
      logid: a.logid,
    })),
  });
  return b;
}

const json = async (res: Response) => {
  const body = await res.json();
  return { status: res.status, body };
};

beforeAll(async () => {
  s = await startTestServer({ label: 'api' });
});
afterAll(async () => s?.close());

describe('reads', () => {
  const ids: Record<string, bigint> = {};
  beforeAll(async () => {
    ids.c1 = (await batch('alice', 'charged', [1, 2], [{ outcome: 'success', logid: 'L-c1', ms: 20 }])).id;
    ids.d1 = (
      await batch(
        'alice',
        'dead',
        [4],
        [
          { outcome: 'error', logid: 'L-d1a', ms: 100 },
          { outcome: 'error', logid: 'L-d1b', ms: 300 },
        ],
      )
    ).id;
    ids.c2 = (await batch('bob', 'charged', [5], [{ outcome: 'success', logid: 'L-c2', ms: 30 }])).id;
    ids.o1 = (await batch('bob', 'open', [1, 1, 1])).id;
    ids.c3 = (
      await batch(
        'carol',
        'charged',
        [2, 2],
        [
          { outcome: 'error', logid: 'L-c3a', kind: 'rate_limited', ms: 5 },
          { outcome: 'success', logid: 'L-c3b', ms: 40 },
        ],
      )
    ).id;
  });

  it('GET /api/status: events and batches by status, queue counts, oldest pending age', async () => {
    const { status, body } = await json(await s.api('/api/status'));
    expect(status).toBe(200);
    expect(body.events).toMatchObject({ charged: 5, dead: 1, batched: 3 });
    expect(body.batches).toMatchObject({ charged: 3, dead: 1, open: 1 });
    expect(body.queues.events).toMatchObject({ waiting: expect.any(Number), active: expect.any(Number) });
    expect(body.queues.charge).toBeDefined();
    expect(body.oldestPendingEventAgeSec).toBeNull();
    expect(Date.parse(body.now)).toBeGreaterThan(0);
    expect(body.chargeAlerts).toEqual({ total: 0, latest: [] });
  });

  it('GET /api/status: a stray success answer shows as a charge alert', async () => {
    await s.db.chargeAlert.create({
      data: {
        kind: 'stray_success',
        batchId: ids.c2!,
        outTradeNo: 'T-stray',
        details: { why: 'lease_lost' },
      },
    });
    await sleep(1_100); // /api/status is cached for a second
    const { body } = await json(await s.api('/api/status'));
    expect(body.chargeAlerts).toMatchObject({
      total: 1,
      latest: [{ kind: 'stray_success', batchId: String(ids.c2), outTradeNo: 'T-stray' }],
    });
    await s.db.chargeAlert.deleteMany();
  });

  it('GET /api/batches: newest first, keyset pages that neither overlap nor skip', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const { status, body } = await json(
        await s.api(`/api/batches?limit=2${cursor ? `&cursor=${cursor}` : ''}`),
      );
      expect(status).toBe(200);
      expect(body.items.length).toBeLessThanOrEqual(2);
      seen.push(...body.items.map((b: { id: string }) => b.id));
      cursor = body.nextCursor;
      pages += 1;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual([ids.c3, ids.o1, ids.c2, ids.d1, ids.c1].map(String));
  });

  it('GET /api/batches: filters by status, openId and time; rows carry the key, counts and latest logid', async () => {
    const dead = (await json(await s.api('/api/batches?status=dead'))).body;
    expect(dead.items).toHaveLength(1);
    expect(dead.items[0]).toMatchObject({
      id: String(ids.d1),
      status: 'dead',
      openId: 'alice',
      serviceId: 's1',
      serviceModeId: 'm1',
      isTestEnv: false,
      count: 4,
      eventCount: 1,
      attempts: 2,
      outTradeNo: expect.stringMatching(/^otn-/),
      deadReason: 'deadline passed after 3 attempts',
      lastError: 'HTTP 503',
      latestLogid: 'L-d1b',
      finishedAt: expect.any(String),
    });
    const bob = (await json(await s.api('/api/batches?openId=bob'))).body;
    expect(bob.items.map((b: { id: string }) => b.id)).toEqual([String(ids.o1), String(ids.c2)]);
    expect(bob.items[0].latestLogid).toBeNull();
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await json(await s.api(`/api/batches?since=${future}`))).body.items).toEqual([]);
    const all = (await json(await s.api(`/api/batches?until=${Date.now() + 3_600_000}&status=charged`))).body;
    expect(all.items).toHaveLength(3);
  });

  it('GET /api/batches/:id: the batch, its events and all attempts', async () => {
    const { status, body } = await json(await s.api(`/api/batches/${ids.c3}`));
    expect(status).toBe(200);
    expect(body.batch).toMatchObject({
      id: String(ids.c3),
      status: 'charged',
      count: 4,
      latestLogid: 'L-c3b',
    });
    expect(body.events).toMatchObject({ total: 2, shown: 2 });
    expect(body.events.items.map((e: { count: number }) => e.count)).toEqual([2, 2]);
    expect(body.attempts.map((a: { attemptNo: number; logid: string }) => [a.attemptNo, a.logid])).toEqual([
      [1, 'L-c3a'],
      [2, 'L-c3b'],
    ]);
    expect((await s.api('/api/batches/999999')).status).toBe(404);
  });

  it('GET /api/timeseries: one point per minute with events in, uses deducted and call errors', async () => {
    const { status, body } = await json(await s.api('/api/timeseries?minutes=5'));
    expect(status).toBe(200);
    expect(body.points).toHaveLength(5);
    const sum = (k: string) => body.points.reduce((a: number, p: Record<string, number>) => a + p[k]!, 0);
    // 9 events; successes deducted 3 + 5 + 4; errors: 2 of d1 + 1 of c3 (the minute may have turned: sum all).
    expect(sum('eventsIn')).toBe(9);
    expect(sum('deductions')).toBe(12);
    expect(sum('errors')).toBe(3);
    const times = body.points.map((p: { t: string }) => Date.parse(p.t));
    expect(times[4] - times[0]).toBe(4 * 60_000);
  });

  it('GET /api/douyin-health: attempts, error rate, latency percentiles, last errors with logids', async () => {
    const { status, body } = await json(await s.api('/api/douyin-health'));
    expect(status).toBe(200);
    expect(body).toMatchObject({ windowSec: 300, attempts: 6, errors: 3, errorRate: 0.5 });
    expect(body.errorsByKind).toEqual({ transient: 2, rate_limited: 1 });
    expect(body.p50Ms).toBeGreaterThan(5);
    expect(body.p95Ms).toBeGreaterThanOrEqual(body.p50Ms);
    expect(body.lastErrors.map((e: { logid: string }) => e.logid).sort()).toEqual([
      'L-c3a',
      'L-d1a',
      'L-d1b',
    ]);
  });

  it('GET /api/users/:openId without a Douyin client: ledger facts, and remaining shown as an error field', async () => {
    const { status, body } = await json(await s.api('/api/users/alice'));
    expect(status).toBe(200);
    expect(body.keys).toEqual([
      expect.objectContaining({ openId: 'alice', serviceId: 's1', serviceModeId: 'm1' }),
    ]);
    expect(body.events).toEqual({ charged: { events: 2, uses: 3 }, dead: { events: 1, uses: 4 } });
    expect(body.charged).toEqual([expect.objectContaining({ serviceModeId: 'm1', uses: 3, batches: 1 })]);
    expect(body.recentBatches.map((b: { id: string }) => b.id)).toEqual([String(ids.d1), String(ids.c1)]);
    expect(body.remaining).toEqual([
      { serviceId: 's1', error: expect.objectContaining({ kind: 'unavailable' }) },
    ]);
    const nobody = (await json(await s.api('/api/users/nobody'))).body;
    expect(nobody).toMatchObject({ keys: [], events: {}, recentBatches: [], remaining: [] });
  });

  it('GET /api/users/:openId/events: the events of the user, newest first, in keyset pages, by status', async () => {
    const first = (await json(await s.api('/api/users/alice/events?limit=2'))).body;
    expect(first.items.map((e: { count: number; status: string }) => [e.count, e.status])).toEqual([
      [4, 'dead'],
      [2, 'charged'],
    ]);
    expect(first.items[0]).toMatchObject({
      key: { openId: 'alice', serviceModeId: 'm1' },
      batchId: String(ids.d1),
    });
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = (await json(await s.api(`/api/users/alice/events?limit=2&cursor=${first.nextCursor}`)))
      .body;
    expect(second.items.map((e: { count: number; batchId: string }) => [e.count, e.batchId])).toEqual([
      [1, String(ids.c1)],
    ]);
    expect(second.nextCursor).toBeNull();
    // A page that is exactly the rest says there is no more.
    const whole = (await json(await s.api('/api/users/alice/events?limit=3'))).body;
    expect(whole.items).toHaveLength(3);
    expect(whole.nextCursor).toBeNull();
    const dead = (await json(await s.api('/api/users/alice/events?status=dead'))).body;
    expect(dead.items.map((e: { eventId: string }) => e.eventId)).toEqual([first.items[0].eventId]);
    expect((await json(await s.api('/api/users/nobody/events'))).body).toEqual({
      items: [],
      nextCursor: null,
    });
    // Two keys, events interleaved: pages merge them newest first, none lost or repeated.
    const [m1, m2] = [await key('dora', 'm1'), await key('dora', 'm2')];
    for (let i = 0; i < 7; i++) {
      await insertEvents(s.db, [
        {
          eventId: `dora-${i}`,
          keyId: i % 2 ? m2.id : m1.id,
          count: 1,
          occurredAt: null,
          enqueuedAt: null,
          attributes: null,
        },
      ]);
      await sleep(3); // a later received_at for each
    }
    const seen: { eventId: string; serviceModeId: string }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const path: string = `/api/users/dora/events?limit=3${cursor ? `&cursor=${cursor}` : ''}`;
      const page: {
        items: { eventId: string; status: string; key: { serviceModeId: string } }[];
        nextCursor: string | null;
      } = (await json(await s.api(path))).body;
      expect(page.items.every((e) => e.status === 'pending')).toBe(true);
      seen.push(...page.items.map((e) => ({ eventId: e.eventId, serviceModeId: e.key.serviceModeId })));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen.map((e) => e.eventId)).toEqual([
      'dora-6',
      'dora-5',
      'dora-4',
      'dora-3',
      'dora-2',
      'dora-1',
      'dora-0',
    ]);
    expect(seen.map((e) => e.serviceModeId)).toEqual(['m1', 'm2', 'm1', 'm2', 'm1', 'm2', 'm1']);

    const bad = await json(await s.api('/api/users/alice/events?status=lost'));
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/status/);
    for (const cursor of ['abc', '-1', Buffer.from('{"1":"x"}').toString('base64url')]) {
      const badCursor = await json(await s.api(`/api/users/alice/events?cursor=${cursor}`));
      expect({ cursor, status: badCursor.status }).toEqual({ cursor, status: 400 });
      expect(badCursor.body.error.message).toMatch(/cursor/);
    }
  });

  it('rejects bad input with clear 400s', async () => {
    const cases: [string, RegExp][] = [
      ['/api/batches?status=lost', /status/],
      ['/api/batches?limit=0', /limit/],
      ['/api/batches?limit=500', /limit/],
      ['/api/batches?cursor=abc', /cursor: must be a positive integer/],
      ['/api/batches?since=yesterday', /since: must be an ISO-8601/],
      ['/api/batches?sort=asc', /sort/],
      ['/api/batches/abc', /id: must be a positive integer/],
      ['/api/timeseries?minutes=0', /minutes/],
      ['/api/users/has%20space', /openId/],
      ['/api/purchases?openId=u1', /serviceId/],
    ];
    for (const [path, message] of cases) {
      const { status, body } = await json(await s.api(path));
      expect({ path, status }).toEqual({ path, status: 400 });
      expect(body.error.code).toBe('invalid_request');
      expect(body.error.message).toMatch(message);
    }
  });
});

describe('actions', () => {
  it('POST /api/batches/:id/replay reopens a dead batch, schedules its charge and audits the operator', async () => {
    const dead = await batch('dave', 'dead', [3], [{ outcome: 'error', logid: 'L-x' }]);
    const chargeJobsBefore = await s.queues.charge.count();
    const { status, body } = await json(
      await s.api(`/api/batches/${dead.id}/replay`, { method: 'POST', body: {} }),
    );
    expect(status).toBe(200);
    expect(body).toEqual({ replayed: [String(dead.id)], skipped: [] });
    const after = await s.db.chargeBatch.findUniqueOrThrow({ where: { id: dead.id } });
    expect(after).toMatchObject({ status: 'open', outTradeNo: dead.outTradeNo, count: 3, deadReason: null });
    expect(await s.queues.charge.count()).toBe(chargeJobsBefore + 1);
    const audit = await s.db.operatorAudit.findFirstOrThrow({ where: { target: String(dead.id) } });
    expect(audit).toMatchObject({ actor: 'ops', action: 'batch.replay' });

    // A charged batch is not replayed; the refusal is audited too.
    const charged = await batch('dave', 'charged', [1], [{ outcome: 'success', logid: 'L-y' }]);
    const refused = await json(
      await s.api(`/api/batches/${charged.id}/replay`, { method: 'POST', body: {} }),
    );
    expect(refused.body).toEqual({
      replayed: [],
      skipped: [{ id: String(charged.id), reason: expect.stringMatching(/status is charged/) }],
    });
    const refusal = await s.db.operatorAudit.findFirstOrThrow({ where: { target: String(charged.id) } });
    expect(refusal).toMatchObject({ actor: 'ops', action: 'batch.replay' });
    expect(
      (await s.api(`/api/batches/${charged.id}/replay`, { method: 'POST', body: { x: 1 } })).status,
    ).toBe(400);
  });

  it('POST /api/batches/replay-dead replays every dead batch, audited under the signed-in operator', async () => {
    const a = await batch('erin', 'dead', [1]);
    const b = await batch('frank', 'dead', [2]);
    const res = await fetch(`${s.url}/api/batches/replay-dead`, {
      method: 'POST',
      headers: { authorization: basic('auditor', 'another-password'), 'content-type': 'application/json' },
      body: '{}',
    });
    const body = await res.json();
    expect(res.status).toBe(200);
    expect(body.replayed).toEqual(expect.arrayContaining([String(a.id), String(b.id)]));
    expect(await s.db.chargeBatch.count({ where: { status: 'dead' } })).toBe(0);
    const rows = await s.db.operatorAudit.findMany({ where: { actor: 'auditor' } });
    expect(rows.map((r) => r.action).sort()).toEqual(
      [...body.replayed.map(() => 'batch.replay'), 'batch.replay-dead'].sort(),
    );
  });

  // These run src/metering/resolve.ts (resolveBatches), which audits each batch itself.
  it('POST /api/batches/:id/resolve as uncharged voids a dead batch, recorded with the operator', async () => {
    const dead = await batch('hana', 'dead', [3, 4], [{ outcome: 'error', logid: 'L-r1' }]);
    const { status, body } = await json(
      await s.api(`/api/batches/${dead.id}/resolve`, { method: 'POST', body: { as: 'uncharged' } }),
    );
    expect(status).toBe(200);
    expect(body).toEqual({ resolved: [String(dead.id)], skipped: [] });
    const after = await s.db.chargeBatch.findUniqueOrThrow({ where: { id: dead.id } });
    expect(after).toMatchObject({ status: 'voided', resolvedAs: 'uncharged', resolvedBy: 'ops' });
    expect(
      await s.db.operatorAudit.count({ where: { target: String(dead.id), actor: 'ops' } }),
    ).toBeGreaterThan(0);
    // A successor batch over the same events, under a new out_trade_no, to be charged.
    const successor = await s.db.chargeBatch.findFirstOrThrow({
      where: { keyId: dead.keyId, status: 'open', firstSeq: dead.firstSeq, lastSeq: dead.lastSeq },
    });
    expect(successor).toMatchObject({ count: 7, eventCount: 2, parentId: null });
    expect(successor.outTradeNo).not.toBe(dead.outTradeNo);
    const successorView = (await json(await s.api(`/api/batches/${successor.id}`))).body;
    expect(
      successorView.events.items.map((e: { status: string; batchId: string }) => [e.status, e.batchId]),
    ).toEqual([
      ['batched', String(successor.id)],
      ['batched', String(successor.id)],
    ]);
    // The batch's view says so.
    const view = (await json(await s.api(`/api/batches/${dead.id}`))).body.batch;
    expect(view).toMatchObject({ status: 'voided', resolvedAs: 'uncharged', resolvedBy: 'ops' });
  });

  it('POST /api/batches/:id/resolve as charged settles an insufficient batch; a charged one is skipped with a reason', async () => {
    const short = await batch('hana', 'insufficient', [2]);
    const ok = await json(
      await s.api(`/api/batches/${short.id}/resolve`, { method: 'POST', body: { as: 'charged' } }),
    );
    expect(ok).toEqual({ status: 200, body: { resolved: [String(short.id)], skipped: [] } });
    expect(await s.db.chargeBatch.findUniqueOrThrow({ where: { id: short.id } })).toMatchObject({
      resolvedAs: 'charged',
      resolvedBy: 'ops',
    });

    const charged = await batch('hana', 'charged', [1], [{ outcome: 'success', logid: 'L-r2' }]);
    const skipped = await json(
      await s.api(`/api/batches/${charged.id}/resolve`, { method: 'POST', body: { as: 'uncharged' } }),
    );
    expect(skipped).toEqual({
      status: 200,
      body: { resolved: [], skipped: [{ id: String(charged.id), reason: expect.any(String) }] },
    });
    expect((await s.db.chargeBatch.findUniqueOrThrow({ where: { id: charged.id } })).status).toBe('charged');
  });

  it('POST /api/batches/:id/resolve wants {"as": "charged" | "uncharged"}, nothing else', async () => {
    const dead = await batch('hana', 'dead', [1]);
    for (const [body, message] of [
      [{}, /as/],
      [{ as: 'maybe' }, /as/],
      [{ as: 'charged', note: 'x' }, /note/],
      [null, /body/],
    ] as const) {
      const res = await json(await s.api(`/api/batches/${dead.id}/resolve`, { method: 'POST', body }));
      expect({ body, status: res.status }).toEqual({ body, status: 400 });
      expect(res.body.error.message).toMatch(message);
    }
    const badId = await json(
      await s.api('/api/batches/abc/resolve', { method: 'POST', body: { as: 'charged' } }),
    );
    expect(badId.status).toBe(400);
    expect((await s.db.chargeBatch.findUniqueOrThrow({ where: { id: dead.id } })).status).toBe('dead');
  });

  it('purchase tools answer 503 without a Douyin client, after validating input', async () => {
    const bad = await s.api('/api/purchases/insert', { method: 'POST', body: { openId: 'u1' } });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toMatch(/serviceId/);
    const res = await s.api('/api/purchases/delete', {
      method: 'POST',
      body: { openId: 'u1', serviceId: 's1', serviceModeId: 'm1', outTradeNo: 'p1' },
    });
    expect(res.status).toBe(503);
    expect((await res.json()).error.code).toBe('douyin_unavailable');
  });
});

describe('with Douyin (the simulator behind the real client)', () => {
  let sim: RunningSimulator;
  let d: TestServer;
  let client: DouyinMarketClient;
  let clientRedis: Redis;
  beforeAll(async () => {
    sim = await startSimulator({ clientKey: 'api-key', clientSecret: 'api-secret' });
    clientRedis = new Redis(redisUrl());
    client = simulatorClient(sim, clientRedis, 'api-douyin', {
      clientKey: 'api-key',
      clientSecret: 'api-secret',
      timeoutMs: 2_000,
    });
    // Same ledger as the reads above.
    d = await startTestServer({ label: 'api_douyin', databaseUrl: s.databaseUrl, douyin: client });
  });
  afterAll(async () => {
    await d?.close();
    await client?.close();
    clientRedis?.disconnect();
    await sim?.close();
  });

  const purchase = { openId: 'gina', serviceId: 's1', serviceModeId: 'pm', outTradeNo: 'buy-1' };

  it('insert, list and delete purchases; each action audited with its outcome and logid', async () => {
    const inserted = await json(
      await d.api('/api/purchases/insert', {
        method: 'POST',
        body: { ...purchase, periodType: 1, purchaseTime: Date.now(), usageTimes: 50 },
      }),
    );
    expect(inserted).toMatchObject({ status: 200, body: { logid: expect.any(String) } });
    const list = await json(await d.api('/api/purchases?openId=gina&serviceId=s1'));
    expect(list.status).toBe(200);
    expect(list.body.purchaseInfoList).toEqual([
      expect.objectContaining({ serviceModeId: 'pm', remainServiceTimes: 50 }),
    ]);
    expect((await d.api('/api/purchases/delete', { method: 'POST', body: purchase })).status).toBe(200);
    const gone = await json(await d.api('/api/purchases/delete', { method: 'POST', body: purchase }));
    expect(gone.status).toBe(502);
    expect(gone.body.error).toMatchObject({
      code: 'douyin_error',
      details: { kind: 'not_found', code: 2119003 },
    });
    const audit = await d.db.operatorAudit.findMany({
      where: { target: 'gina/buy-1' },
      orderBy: { id: 'asc' },
    });
    expect(audit.map((a) => [a.actor, a.action, (a.details as { outcome: string }).outcome])).toEqual([
      ['ops', 'purchase.insert', 'ok'],
      ['ops', 'purchase.delete', 'ok'],
      ['ops', 'purchase.delete', 'error'],
    ]);
    expect((audit[2]!.details as { error: { logid: string } }).error.logid).toEqual(expect.any(String));
    const badTime = await d.api('/api/purchases/insert', {
      method: 'POST',
      body: { ...purchase, periodType: 1, purchaseTime: Math.floor(Date.now() / 1000), usageTimes: 5 },
    });
    expect(badTime.status).toBe(400);
    expect((await badTime.json()).error.message).toMatch(/purchaseTime: must be epoch milliseconds/);
  });

  it('user lookup shows the live remaining times, and a Douyin failure as an error field, not a 500', async () => {
    sim.setBalance({ openId: 'alice', serviceId: 's1', serviceModeId: 'm1', remaining: 321 });
    const ok = await json(await d.api('/api/users/alice'));
    expect(ok.status).toBe(200);
    expect(ok.body.remaining).toEqual([
      {
        serviceId: 's1',
        purchases: [expect.objectContaining({ serviceModeId: 'm1', remainServiceTimes: 321 })],
      },
    ]);
    sim.setFaults({ http5xxRate: 1 });
    try {
      const failing = await json(await d.api('/api/users/alice'));
      expect(failing.status).toBe(200);
      expect(failing.body.charged[0]).toMatchObject({ uses: 3 });
      expect(failing.body.remaining).toEqual([
        {
          serviceId: 's1',
          error: expect.objectContaining({ kind: 'transient', message: expect.stringMatching(/503/) }),
        },
      ]);
      const list = await json(await d.api('/api/purchases?openId=alice&serviceId=s1'));
      expect(list.status).toBe(502);
      expect(list.body.error.details.kind).toBe('transient');
    } finally {
      sim.setFaults({ http5xxRate: 0 });
    }
  });
});

describe('user lookup with many services', () => {
  let f: TestServer;
  /** The serviceId of every purchase-list read, in order. */
  const asked: string[] = [];
  const douyin: OperatorDouyinApi = {
    async getUserServicePurchaseList({ serviceId }) {
      asked.push(serviceId);
      return { purchaseInfoList: [{ serviceModeId: 'm1', remainServiceTimes: 7 }] };
    },
    insertPurchaseInfo: async () => ({}),
    deletePurchaseInfo: async () => ({}),
  };
  const services = Array.from({ length: 25 }, (_, i) => `svc-${String(i + 1).padStart(2, '0')}`);
  beforeAll(async () => {
    f = await startTestServer({ label: 'api_services', databaseUrl: s.databaseUrl, douyin });
    await f.db.meterKey.createMany({
      data: services.map((serviceId) => ({
        openId: 'many',
        serviceId,
        serviceModeId: 'm1',
        isTestEnv: false,
      })),
    });
  });
  afterAll(async () => f?.close());

  it('reads the remaining times of 20 services a lookup; nextCursor pages through the rest', async () => {
    const first = await json(await f.api('/api/users/many'));
    expect(first.status).toBe(200);
    expect(first.body.keys).toHaveLength(25);
    expect(asked).toEqual(services.slice(0, 20));
    expect(first.body.remaining.map((r: { serviceId: string }) => r.serviceId)).toEqual(
      services.slice(0, 20),
    );
    expect(first.body.nextCursor).toBe('svc-20');

    asked.length = 0;
    const second = await json(await f.api(`/api/users/many?cursor=${first.body.nextCursor}`));
    expect(second.status).toBe(200);
    expect(asked).toEqual(services.slice(20));
    expect(second.body.remaining).toEqual(
      services.slice(20).map((serviceId) => ({
        serviceId,
        purchases: [{ serviceModeId: 'm1', remainServiceTimes: 7 }],
      })),
    );
    expect(second.body.nextCursor).toBeNull();

    // An extra ?serviceId= is one of the services paged through, still at most 20 a lookup.
    asked.length = 0;
    const extra = await json(await f.api('/api/users/many?serviceId=svc-99&cursor=svc-20'));
    expect(asked).toEqual([...services.slice(20), 'svc-99']);
    expect(extra.body.nextCursor).toBeNull();
    const bad = await f.api('/api/users/many?cursor=has%20space');
    expect(bad.status).toBe(400);
  });
});
