// Fault injection on the business endpoints: busy, 5xx, reset, hang and the key one,
// applied-but-lost (deducted, answer never sent).
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidFaultsError, type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { balanceOf, call, code, DECR, decrBody, getToken, INSERT, LIST, purchaseBody } from './helpers.js';

const socketError = { code: expect.stringMatching(/^(UND_ERR_SOCKET|ECONNRESET|UND_ERR_CLOSED)$/) };

describe('simulator faults', () => {
  let sim: RunningSimulator;
  let token: string;
  beforeAll(async () => {
    sim = await startSimulator();
  });
  beforeEach(async () => {
    sim.reset();
    token = await getToken(sim);
    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 100 });
  });
  afterAll(async () => sim.close());

  it('busy: answers 2100004 without applying', async () => {
    sim.setFaults({ busyRate: 1 });
    const a = await call(sim, DECR, { body: decrBody(), token });
    expect(a.status).toBe(200);
    expect(code(a)).toBe(2100004);
    expect(a.json.extra.error_code).toBe(2100004);
    expect(balanceOf(sim)).toMatchObject({ remaining: 100, deducted: 0 });
    expect(sim.state().calls.busy).toBe(1);
  });

  it('http5xx: answers HTTP 503 with a body that is not JSON, without applying', async () => {
    sim.setFaults({ http5xxRate: 1 });
    const a = await call(sim, DECR, { body: decrBody(), token });
    expect(a.status).toBe(503);
    expect(a.json).toBeUndefined();
    expect(a.text.length).toBeGreaterThan(0);
    const list = await call(sim, `${LIST}?open_id=u1&service_id=s1&is_test_env=false`, { token });
    expect(list.status).toBe(503);
    expect(sim.state().trades).toEqual([]);
    expect(sim.state().calls.http5xx).toBe(2);
  });

  it('reset: the client sees a socket error and nothing is applied', async () => {
    sim.setFaults({ resetRate: 1 });
    await expect(call(sim, DECR, { body: decrBody(), token })).rejects.toMatchObject(socketError);
    await expect(call(sim, INSERT, { body: purchaseBody(), token })).rejects.toMatchObject(socketError);
    expect(balanceOf(sim)).toMatchObject({ remaining: 100, deducted: 0, purchased: 0 });
    expect(sim.state().calls.resets).toBe(2);
  });

  it('hang: never answers, so the client times out, and nothing is applied', async () => {
    sim.setFaults({ hangRate: 1, hangMs: 10_000 });
    const agent = new Agent({ headersTimeout: 300, bodyTimeout: 300 });
    try {
      await expect(call(sim, DECR, { body: decrBody(), token, dispatcher: agent })).rejects.toMatchObject({
        code: 'UND_ERR_HEADERS_TIMEOUT',
      });
    } finally {
      await agent.destroy();
    }
    expect(sim.state().calls.hangs).toBe(1);
    expect(sim.state().trades).toEqual([]);
  });

  it('hang: after hangMs the socket is destroyed', async () => {
    sim.setFaults({ hangRate: 1, hangMs: 200 });
    await expect(call(sim, DECR, { body: decrBody(), token })).rejects.toMatchObject(socketError);
    expect(balanceOf(sim)).toMatchObject({ deducted: 0 });
  });

  it('close() does not wait for hung calls: their sockets are destroyed', async () => {
    const other = await startSimulator({ faults: { hangRate: 1, hangMs: 3_600_000 } });
    const t = await getToken(other);
    const pending = call(other, DECR, { body: decrBody(), token: t });
    const settled = pending.then(
      () => 'answered',
      () => 'failed',
    );
    while (other.state().calls.hangs === 0) await sleep(10);
    await other.close();
    expect(await settled).toBe('failed');
  });

  it('appliedButLost: the client sees a socket error, the deduction is applied; the replay succeeds and charges once', async () => {
    sim.setFaults({ appliedButLostRate: 1 });
    const body = decrBody({ count: 7 });
    await expect(call(sim, DECR, { body, token })).rejects.toMatchObject(socketError);
    let state = sim.state();
    expect(state.calls.appliedButLost).toBe(1);
    expect(state.trades).toEqual([expect.objectContaining({ outTradeNo: body.out_trade_no, count: 7 })]);
    expect(balanceOf(sim)).toMatchObject({ remaining: 93, deducted: 7 });

    // The retry with the same out_trade_no is not applied again, so its answer is not lost.
    const replay = await call(sim, DECR, { body, token });
    expect(code(replay)).toBe(0);
    state = sim.state();
    expect(state.calls.replays).toBe(1);
    expect(state.calls.appliedButLost).toBe(1);
    expect(state.trades).toHaveLength(1);
    expect(balanceOf(sim)).toMatchObject({ remaining: 93, deducted: 7 });
  });

  it('appliedButLost only hits decr calls that applied', async () => {
    sim.setFaults({ appliedButLostRate: 1 });
    expect(code(await call(sim, DECR, { body: decrBody({ count: 1000 }), token }))).toBe(2119001);
    expect(code(await call(sim, DECR, { body: decrBody({ count: 0 }), token }))).toBe(2100005);
    expect(code(await call(sim, INSERT, { body: purchaseBody(), token }))).toBe(0);
    expect(sim.state().calls.appliedButLost).toBe(0);
  });

  it('draws faults in the order reset, hang, 5xx, busy', async () => {
    sim.setFaults({ resetRate: 1, hangRate: 1, http5xxRate: 1, busyRate: 1, hangMs: 100 });
    await expect(call(sim, DECR, { body: decrBody(), token })).rejects.toMatchObject(socketError);
    sim.setFaults({ resetRate: 0 });
    await expect(call(sim, DECR, { body: decrBody(), token })).rejects.toMatchObject(socketError);
    sim.setFaults({ hangRate: 0 });
    expect((await call(sim, DECR, { body: decrBody(), token })).status).toBe(503);
    sim.setFaults({ http5xxRate: 0 });
    expect(code(await call(sim, DECR, { body: decrBody(), token }))).toBe(2100004);
    expect(sim.state().calls).toMatchObject({ resets: 1, hangs: 1, http5xx: 1, busy: 1, total: 4 });
    expect(balanceOf(sim)).toMatchObject({ deducted: 0 });
  });

  it('partial rates fault some calls and let the others through', async () => {
    sim.setFaults({ busyRate: 0.5 });
    const codes: number[] = [];
    for (let i = 0; i < 60; i++) codes.push(code(await call(sim, DECR, { body: decrBody(), token }))!);
    const busy = codes.filter((c) => c === 2100004).length;
    expect(busy).toBeGreaterThan(5);
    expect(busy).toBeLessThan(55);
    expect(codes.filter((c) => c === 0).length).toBe(60 - busy);
    expect(balanceOf(sim)).toMatchObject({ deducted: 60 - busy });
    expect(sim.state().calls.busy).toBe(busy);
  });

  it('never faults the token or control endpoints', async () => {
    sim.setFaults({ resetRate: 1, hangRate: 1, http5xxRate: 1, busyRate: 1 });
    expect(await getToken(sim)).toMatch(/^clt\./);
    const state = await call(sim, '_sim/state');
    expect(state.status).toBe(200);
    expect(state.json.calls.total).toBe(0);
  });

  it('takes faults from the options and validates every change', async () => {
    const other = await startSimulator({ faults: { busyRate: 1, latencyMs: 5 } });
    try {
      expect(other.faults()).toMatchObject({ busyRate: 1, latencyMs: 5, hangMs: 30_000, qps: 0 });
      const t = await getToken(other);
      expect(code(await call(other, DECR, { body: decrBody(), token: t }))).toBe(2100004);
      expect(() => other.setFaults({ busyRate: 2 })).toThrow(InvalidFaultsError);
      expect(() => other.setFaults({ latencyMs: -1 })).toThrow(/latencyMs/);
      expect(other.faults().busyRate).toBe(1);
    } finally {
      await other.close();
    }
    await expect(startSimulator({ faults: { resetRate: 1.5 } })).rejects.toThrow(InvalidFaultsError);
  });
});
