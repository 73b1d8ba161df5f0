// The QPS limit over a sliding 1000 ms window, maxPerSecond, and artificial latency.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { SlidingWindow } from '../../src/simulator/window.js';
import { balanceOf, call, code, DECR, decrBody, getToken, LIST } from './helpers.js';

describe('simulator QPS limit and latency', () => {
  let sim: RunningSimulator;
  let token: string;
  beforeAll(async () => {
    sim = await startSimulator();
  });
  beforeEach(async () => {
    sim.reset();
    token = await getToken(sim);
    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 1000 });
  });
  afterAll(async () => sim.close());

  it('answers a burst above the limit 2118110 (HTTP 200) without applying, and reports maxPerSecond', async () => {
    sim.setFaults({ qps: 5 });
    const answers = await Promise.all(
      Array.from({ length: 12 }, () => call(sim, DECR, { body: decrBody({ count: 2 }), token })),
    );
    const codes = answers.map(code);
    expect(codes.filter((c) => c === 0)).toHaveLength(5);
    expect(codes.filter((c) => c === 2118110)).toHaveLength(7);
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const limited = answers.find((a) => code(a) === 2118110)!;
    expect(limited.json.extra.error_code).toBe(2118110);
    const state = sim.state();
    expect(state.calls).toMatchObject({ total: 12, rateLimited: 7, maxPerSecond: 12 });
    expect(state.trades).toHaveLength(5);
    expect(balanceOf(sim)).toMatchObject({ deducted: 10 });
  });

  it('counts the four business endpoints together and frees the window after 1000 ms', async () => {
    sim.setFaults({ qps: 3 });
    expect(code(await call(sim, DECR, { body: decrBody(), token }))).toBe(0);
    expect(code(await call(sim, `${LIST}?open_id=u1&service_id=s1&is_test_env=false`, { token }))).toBe(0);
    expect(code(await call(sim, DECR, { body: decrBody(), token }))).toBe(0);
    expect(code(await call(sim, `${LIST}?open_id=u1&service_id=s1&is_test_env=false`, { token }))).toBe(
      2118110,
    );
    // Token and control calls are neither limited nor counted.
    expect(await getToken(sim)).toMatch(/^clt\./);
    expect((await call(sim, '_sim/state')).status).toBe(200);
    await sleep(1_050);
    expect(code(await call(sim, DECR, { body: decrBody(), token }))).toBe(0);
    const calls = sim.state().calls;
    expect(calls).toMatchObject({ total: 5, rateLimited: 1, maxPerSecond: 4 });
    expect(calls.byPath).toEqual({
      '/market/service/user/remaintimes/decr/': 3,
      '/market/service/user/purchase/list/': 2,
    });
  });

  it('maxPerSecond counts every business call received, also without a limit and with bad tokens', async () => {
    await Promise.all(
      Array.from({ length: 20 }, () => call(sim, DECR, { body: decrBody(), token: 'clt.bad' })),
    );
    expect(sim.state().calls).toMatchObject({ total: 20, maxPerSecond: 20, rateLimited: 0 });
  });

  it('applies latency before applying and before answering', async () => {
    sim.setFaults({ latencyMs: 400 });
    const started = Date.now();
    const pending = call(sim, DECR, { body: decrBody({ count: 3 }), token });
    await sleep(150);
    // Received and counted, but not applied yet.
    expect(sim.state().calls.total).toBe(1);
    expect(balanceOf(sim)).toMatchObject({ deducted: 0 });
    expect(code(await pending)).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(balanceOf(sim)).toMatchObject({ deducted: 3 });
  });
});

describe('SlidingWindow', () => {
  it('keeps the entries within (now - span, now] and grows past its initial capacity', () => {
    const w = new SlidingWindow(1000);
    expect(w.add(0)).toBe(1);
    expect(w.add(500)).toBe(2);
    expect(w.add(999)).toBe(3);
    expect(w.count(1000)).toBe(2);
    expect(w.count(1499)).toBe(2);
    expect(w.count(1500)).toBe(1);
    for (let i = 0; i < 3000; i++) w.add(2000 + i / 10);
    expect(w.count(2300)).toBe(3000);
    expect(w.count(3000)).toBe(3000 - 1);
    expect(w.count(5000)).toBe(0);
    w.add(6000);
    w.clear();
    expect(w.count(6000)).toBe(0);
  });
});
