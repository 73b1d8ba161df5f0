// DecrUserRemainTimes: envelope, validation, idempotency by out_trade_no (and the
// window after which it is forgotten), insufficient balance, test mode.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { balanceOf, call, code, DECR, decrBody, getToken } from './helpers.js';

describe('simulator decr', () => {
  let sim: RunningSimulator;
  let token: string;
  beforeAll(async () => {
    sim = await startSimulator();
    token = await getToken(sim);
  });
  beforeEach(() => {
    sim.reset();
    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
  });
  afterAll(async () => sim.close());

  it('deducts, records the trade and answers the contract envelope with a fresh logid', async () => {
    const body = decrBody({ count: 3 });
    const a = await call(sim, DECR, { body, token });
    expect(a.status).toBe(200);
    expect(a.json).toEqual({
      data: { error_code: 0, description: '' },
      extra: {
        error_code: 0,
        description: '',
        sub_error_code: 0,
        sub_description: '',
        logid: expect.stringMatching(/^\d{20}[0-9A-F]{14}$/),
        now: expect.any(Number),
      },
    });
    expect(Math.abs(a.json.extra.now - Date.now() / 1000)).toBeLessThan(5);
    expect(balanceOf(sim)).toEqual({
      openId: 'u1',
      serviceId: 's1',
      serviceModeId: 'm1',
      remaining: 7,
      purchased: 0,
      deducted: 3,
    });
    const [trade] = sim.state().trades;
    expect(trade).toEqual({
      outTradeNo: body.out_trade_no,
      openId: 'u1',
      serviceId: 's1',
      serviceModeId: 'm1',
      isTestEnv: false,
      count: 3,
      at: expect.any(Number),
    });
    const b = await call(sim, DECR, { body: decrBody(), token });
    expect(b.json.extra.logid).not.toBe(a.json.extra.logid);
    expect(sim.state().calls.byPath['/market/service/user/remaintimes/decr/']).toBe(2);
  });

  it('deducts the whole remaining balance down to exactly 0', async () => {
    expect(code(await call(sim, DECR, { body: decrBody({ count: 10 }), token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 0, deducted: 10 });
  });

  it('rejects invalid parameters with 2100005 naming the field, and deducts nothing', async () => {
    const cases: [string, unknown][] = [
      ['count', decrBody({ count: 0 })],
      ['count', decrBody({ count: -1 })],
      ['count', decrBody({ count: 1.5 })],
      ['count', decrBody({ count: '3' })],
      ['count', decrBody({ count: 2_147_483_648 })],
      ['count', decrBody({ count: undefined })],
      ['is_test_env', decrBody({ is_test_env: 'false' })],
      ['is_test_env', decrBody({ is_test_env: undefined })],
      ['open_id', decrBody({ open_id: '' })],
      ['open_id', decrBody({ open_id: 7 })],
      ['out_trade_no', decrBody({ out_trade_no: 'x'.repeat(65) })],
      ['out_trade_no', decrBody({ out_trade_no: '' })],
      ['service_id', decrBody({ service_id: undefined })],
      ['service_mode_id', decrBody({ service_mode_id: null })],
      ['body', [decrBody()]],
      ['JSON', '{"count": 1,'],
    ];
    for (const [field, body] of cases) {
      const a = await call(sim, DECR, { body, token });
      expect({ field, status: a.status, code: code(a) }).toEqual({ field, status: 200, code: 2100005 });
      expect(a.json.data.description).toContain('参数不合法');
      expect(a.json.data.description).toContain(field);
      expect(a.json.extra.error_code).toBe(2100005);
    }
    const notJson = await call(sim, DECR, {
      body: JSON.stringify(decrBody()),
      token,
      headers: { 'content-type': 'text/plain' },
    });
    expect(code(notJson)).toBe(2100005);
    expect(notJson.json.data.description).toContain('content-type');
    expect(balanceOf(sim)).toMatchObject({ remaining: 10, deducted: 0 });
    expect(sim.state().trades).toEqual([]);
  });

  it('accepts a 64-character out_trade_no and the largest int32 count as valid', async () => {
    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 2_147_483_647 });
    const a = await call(sim, DECR, {
      body: decrBody({ out_trade_no: 'y'.repeat(64), count: 2_147_483_647 }),
      token,
    });
    expect(code(a)).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 0 });
  });

  it('answers a replay with identical parameters success without deducting again', async () => {
    const body = decrBody({ count: 4 });
    for (let i = 0; i < 3; i++) expect(code(await call(sim, DECR, { body, token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 6, deducted: 4 });
    const state = sim.state();
    expect(state.trades).toHaveLength(1);
    expect(state.calls.replays).toBe(2);
  });

  it('answers 2119002 to a replayed out_trade_no with any different parameter', async () => {
    const body = decrBody({ count: 2 });
    expect(code(await call(sim, DECR, { body, token }))).toBe(0);
    sim.setBalance({ openId: 'u2', serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
    // (is_test_env: true is a test call: it never deducts, so it is not compared with trades.)
    const variants = [{ count: 3 }, { open_id: 'u2' }, { service_id: 's2' }, { service_mode_id: 'm2' }];
    for (const v of variants) {
      const a = await call(sim, DECR, { body: { ...body, ...v }, token });
      expect({ v, code: code(a) }).toEqual({ v, code: 2119002 });
    }
    expect(balanceOf(sim)).toMatchObject({ remaining: 8, deducted: 2 });
    expect(balanceOf(sim, 'u2')).toMatchObject({ remaining: 10, deducted: 0 });
    expect(sim.state().trades).toHaveLength(1);
    expect(sim.state().calls.replays).toBe(0);
  });

  it('answers 2119001 when remaining < count or there is no bucket, records nothing, and the same out_trade_no can succeed later', async () => {
    const body = decrBody({ count: 11 });
    const a = await call(sim, DECR, { body, token });
    expect(code(a)).toBe(2119001);
    expect(a.json.data.description).toBe('remaining times insufficient');
    expect(code(await call(sim, DECR, { body: decrBody({ open_id: 'nobody' }), token }))).toBe(2119001);
    expect(code(await call(sim, DECR, { body: decrBody({ service_mode_id: 'other' }), token }))).toBe(
      2119001,
    );
    expect(balanceOf(sim)).toMatchObject({ remaining: 10, deducted: 0 });
    expect(sim.state().trades).toEqual([]);
    expect(balanceOf(sim, 'nobody')).toBeUndefined();

    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 20 });
    expect(code(await call(sim, DECR, { body, token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 9, deducted: 11 });
  });

  it('keeps buckets apart per user, service and mode', async () => {
    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm2', remaining: 5 });
    expect(code(await call(sim, DECR, { body: decrBody({ service_mode_id: 'm2', count: 5 }), token }))).toBe(
      0,
    );
    expect(balanceOf(sim, 'u1', 's1', 'm2')).toMatchObject({ remaining: 0, deducted: 5 });
    expect(balanceOf(sim)).toMatchObject({ remaining: 10, deducted: 0 });
  });
});

describe('simulator decr: the idempotency window', () => {
  let sim: RunningSimulator;
  let token: string;
  beforeAll(async () => {
    sim = await startSimulator({ idempotencyWindowSec: 1 });
    token = await getToken(sim);
  });
  beforeEach(() => {
    sim.reset();
    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
  });
  afterAll(async () => sim.close());

  it('is one month by default', async () => {
    const dflt = await startSimulator();
    try {
      expect(dflt.settings().idempotencyWindowSec).toBe(2_592_000);
    } finally {
      await dflt.close();
    }
  });

  it('forgets an out_trade_no a window after its deduction: the same call then deducts again', async () => {
    const body = decrBody({ count: 2 });
    expect(code(await call(sim, DECR, { body, token }))).toBe(0);
    const first = sim.state().trades[0]!;
    expect(code(await call(sim, DECR, { body, token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 8, deducted: 2 });
    expect(sim.state().calls.replays).toBe(1);

    await sleep(1_100);
    expect(code(await call(sim, DECR, { body, token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 6, deducted: 4 });
    const state = sim.state();
    expect(state.calls.deductedAgain).toBe(1);
    expect(state.calls.replays).toBe(1);
    // Still one trade per out_trade_no: the latest deduction, which starts a new window.
    expect(state.trades).toHaveLength(1);
    expect(state.trades[0]!.at).toBeGreaterThan(first.at);
    expect(code(await call(sim, DECR, { body, token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 6, deducted: 4 });
  });

  it('after the window, different parameters are a new deduction, not a conflict', async () => {
    const body = decrBody({ count: 2 });
    expect(code(await call(sim, DECR, { body, token }))).toBe(0);
    expect(code(await call(sim, DECR, { body: { ...body, count: 3 }, token }))).toBe(2119002);
    await sleep(1_100);
    expect(code(await call(sim, DECR, { body: { ...body, count: 3 }, token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 5, deducted: 5 });
    expect(sim.state().trades).toEqual([
      expect.objectContaining({ outTradeNo: body.out_trade_no, count: 3 }),
    ]);
  });
});

describe('simulator decr: test mode (is_test_env: true)', () => {
  let sim: RunningSimulator;
  let token: string;
  beforeAll(async () => {
    sim = await startSimulator({ testWhitelist: ['tester', 'u1'] });
    token = await getToken(sim);
  });
  beforeEach(() => {
    sim.reset();
    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
    sim.setBalance({ openId: 'u2', serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
  });
  afterAll(async () => sim.close());

  it('a whitelisted open_id succeeds and nothing is deducted; the test call is recorded', async () => {
    const body = decrBody({ is_test_env: true, count: 4 });
    expect(code(await call(sim, DECR, { body, token }))).toBe(0);
    // No purchase needed either.
    const tester = decrBody({ open_id: 'tester', is_test_env: true, count: 1_000 });
    expect(code(await call(sim, DECR, { body: tester, token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 10, deducted: 0 });
    expect(balanceOf(sim, 'tester')).toBeUndefined();
    const state = sim.state();
    expect(state.trades).toEqual([]);
    expect(state.testCalls).toEqual([
      {
        method: 'decr',
        openId: 'u1',
        serviceId: 's1',
        serviceModeId: 'm1',
        count: 4,
        outTradeNo: body.out_trade_no,
        at: expect.any(Number),
      },
      expect.objectContaining({ method: 'decr', openId: 'tester', count: 1_000 }),
    ]);
  });

  it('an open_id not on the whitelist gets the simulator code 2190099 and nothing is deducted', async () => {
    const a = await call(sim, DECR, { body: decrBody({ open_id: 'u2', is_test_env: true }), token });
    expect(a.status).toBe(200);
    expect(code(a)).toBe(2190099);
    expect(a.json.extra.error_code).toBe(2190099);
    expect(a.json.data.description).toMatch(/whitelist/);
    expect(balanceOf(sim, 'u2')).toMatchObject({ remaining: 10, deducted: 0 });
    expect(sim.state().testCalls).toEqual([]);
    // The same user outside test mode is charged as usual.
    expect(code(await call(sim, DECR, { body: decrBody({ open_id: 'u2' }), token }))).toBe(0);
    expect(balanceOf(sim, 'u2')).toMatchObject({ remaining: 9, deducted: 1 });
  });

  it('with no whitelist configured, every test call fails', async () => {
    const bare = await startSimulator();
    try {
      bare.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
      const t = await getToken(bare);
      expect(code(await call(bare, DECR, { body: decrBody({ is_test_env: true }), token: t }))).toBe(2190099);
      expect(balanceOf(bare)).toMatchObject({ remaining: 10, deducted: 0 });
    } finally {
      await bare.close();
    }
  });
});
