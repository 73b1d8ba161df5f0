// The /_sim/ control endpoint over HTTP, unknown routes, and the programmatic handle.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_FAULTS, type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { call, code, DECR, decrBody, getToken } from './helpers.js';

describe('simulator control endpoint', () => {
  let sim: RunningSimulator;
  beforeAll(async () => {
    sim = await startSimulator({ clientKey: 'k2', clientSecret: 's2' });
  });
  afterAll(async () => sim.close());

  it('reports the url with a trailing slash and its port', () => {
    expect(sim.url).toBe(`http://127.0.0.1:${sim.port}/`);
    expect(sim.port).toBeGreaterThan(0);
  });

  it('POST /_sim/balances sets one or many balances; GET /_sim/state reports them', async () => {
    const one = await call(sim, '_sim/balances', {
      body: { openId: 'a', serviceId: 's', serviceModeId: 'm', remaining: 5 },
    });
    expect(one.status).toBe(200);
    expect(one.json).toEqual({ ok: true, count: 1 });
    const many = await call(sim, '_sim/balances', {
      body: [
        { openId: 'b', serviceId: 's', serviceModeId: 'm', remaining: 6 },
        { openId: 'a', serviceId: 's', serviceModeId: 'm', remaining: 9 },
      ],
    });
    expect(many.json).toEqual({ ok: true, count: 2 });
    const state = await call(sim, '_sim/state');
    expect(state.status).toBe(200);
    expect(state.json).toEqual(sim.state());
    expect(state.json.balances).toEqual([
      { openId: 'a', serviceId: 's', serviceModeId: 'm', remaining: 9, purchased: 0, deducted: 0 },
      { openId: 'b', serviceId: 's', serviceModeId: 'm', remaining: 6, purchased: 0, deducted: 0 },
    ]);
    expect(state.json).toMatchObject({ trades: [], tokensIssued: 0, calls: { total: 0, maxPerSecond: 0 } });
  });

  it('POST /_sim/balances rejects invalid bodies with 400 naming the field', async () => {
    const bad = await call(sim, '_sim/balances', {
      body: { openId: 'a', serviceId: 's', serviceModeId: 'm', remaining: -1 },
    });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.json.problems)).toContain('remaining');
    const notJson = await call(sim, '_sim/balances', { body: '{x' });
    expect(notJson.status).toBe(400);
    expect(() =>
      sim.setBalance({ openId: 'a', serviceId: 's', serviceModeId: 'm', remaining: 1.5 }),
    ).toThrow();
  });

  it('POST /_sim/faults applies a partial change and returns the full faults; invalid ones are 400', async () => {
    const a = await call(sim, '_sim/faults', { body: { busyRate: 0.25, latencyMs: 3 } });
    expect(a.status).toBe(200);
    expect(a.json).toEqual({ ...DEFAULT_FAULTS, busyRate: 0.25, latencyMs: 3 });
    expect(sim.faults()).toEqual(a.json);
    for (const body of [{ busyRate: 1.5 }, { qps: 'ten' }, { nonsense: 1 }, [1]]) {
      const bad = await call(sim, '_sim/faults', { body });
      expect({ body, status: bad.status }).toEqual({ body, status: 400 });
    }
    expect(JSON.stringify((await call(sim, '_sim/faults', { body: { hangRate: 7 } })).json)).toContain(
      'hangRate',
    );
    expect(sim.faults()).toMatchObject({ busyRate: 0.25, latencyMs: 3, hangRate: 0 });
    expect((await call(sim, '_sim/faults', { body: { busyRate: 0, latencyMs: 0 } })).json).toEqual(
      DEFAULT_FAULTS,
    );
  });

  it('POST /_sim/tokens/expire expires the issued tokens', async () => {
    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
    // This simulator has its own key and secret: the default ones are refused.
    await expect(getToken(sim)).rejects.toThrow(/10003/);
    const t = await call(sim, 'oauth/client_token/', {
      body: { client_key: 'k2', client_secret: 's2', grant_type: 'client_credential' },
    });
    const live = t.json.data.access_token as string;
    expect(code(await call(sim, DECR, { body: decrBody(), token: live }))).toBe(0);
    const r = await call(sim, '_sim/tokens/expire', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(code(await call(sim, DECR, { body: decrBody(), token: live }))).toBe(28001008);
  });

  it('GET /_sim/settings shows the window, the token overlap and the test whitelist; POST changes them', async () => {
    const start = await call(sim, '_sim/settings');
    expect(start.status).toBe(200);
    expect(start.json).toEqual({ idempotencyWindowSec: 2_592_000, tokenOverlapSec: 300, testWhitelist: [] });
    const a = await call(sim, '_sim/settings', { body: { testWhitelist: ['t1', 't2'], tokenOverlapSec: 1 } });
    expect(a.status).toBe(200);
    expect(a.json).toEqual({
      idempotencyWindowSec: 2_592_000,
      tokenOverlapSec: 1,
      testWhitelist: ['t1', 't2'],
    });
    expect(sim.settings()).toEqual(a.json);
    for (const body of [
      { idempotencyWindowSec: 0 },
      { tokenOverlapSec: -1 },
      { testWhitelist: 't1' },
      { testWhitelist: [''] },
      { nonsense: 1 },
    ]) {
      const bad = await call(sim, '_sim/settings', { body });
      expect({ body, status: bad.status }).toEqual({ body, status: 400 });
    }
    expect(sim.settings()).toEqual(a.json);
    // Settings go back to the simulator's start options on reset.
    await call(sim, '_sim/reset', { method: 'POST' });
    expect(sim.settings()).toEqual(start.json);
  });

  it('POST /_sim/reset clears balances, trades, counters and faults', async () => {
    sim.setFaults({ qps: 9, busyRate: 0.5 });
    const r = await call(sim, '_sim/reset', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(sim.state()).toEqual({
      balances: [],
      trades: [],
      testCalls: [],
      contractViolations: [],
      tokensIssued: 0,
      calls: {
        total: 0,
        byPath: {},
        rateLimited: 0,
        busy: 0,
        http5xx: 0,
        resets: 0,
        hangs: 0,
        appliedButLost: 0,
        replays: 0,
        deductedAgain: 0,
        tokenRefused: 0,
        maxPerSecond: 0,
      },
      webhooks: { sent: 0, delivered: 0, failed: 0, attempts: 0, last: [] },
    });
    expect(sim.faults()).toEqual(DEFAULT_FAULTS);
  });

  it('answers unknown routes and wrong methods with HTTP 404 and the 2100005 envelope', async () => {
    for (const [path, method] of [
      ['nope/', 'GET'],
      [DECR, 'GET'],
      ['market/service/user/remaintimes/decr', 'POST'],
    ] as const) {
      const a = await call(sim, path, { method, body: method === 'POST' ? {} : undefined });
      expect({ path, status: a.status, code: code(a), extra: a.json.extra.error_code }).toEqual({
        path,
        status: 404,
        code: 2100005,
        extra: 2100005,
      });
      expect(a.json.extra.logid).toMatch(/^\d{20}[0-9A-F]{14}$/);
    }
    expect(sim.state().calls.total).toBe(0);
  });

  it('logs requests only when given a logger', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
    const logged = await startSimulator({ logger });
    try {
      await call(logged, '_sim/state');
      expect(lines.some((l) => l.includes('/_sim/state'))).toBe(true);
    } finally {
      await logged.close();
    }
  });

  it('close() is idempotent and stops serving', async () => {
    const other = await startSimulator();
    const url = other.url;
    await Promise.all([other.close(), other.close()]);
    await expect(fetch(`${url}_sim/state`)).rejects.toThrow();
  });
});
