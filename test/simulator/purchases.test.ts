// InsertPurchaseInfo, DeletePurchaseInfo and GetUserServicePurchaseList.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import {
  balanceOf,
  call,
  code,
  DECR,
  DELETE,
  decrBody,
  getToken,
  INSERT,
  LIST,
  purchaseBody,
} from './helpers.js';

describe('simulator purchases', () => {
  let sim: RunningSimulator;
  let token: string;
  beforeAll(async () => {
    sim = await startSimulator();
    token = await getToken(sim);
  });
  beforeEach(() => sim.reset());
  afterAll(async () => sim.close());

  it('insert adds usage_times to the bucket, which decr then draws from', async () => {
    expect(code(await call(sim, INSERT, { body: purchaseBody({ usage_times: 10 }), token }))).toBe(0);
    expect(code(await call(sim, INSERT, { body: purchaseBody({ usage_times: 5 }), token }))).toBe(0);
    expect(balanceOf(sim)).toEqual({
      openId: 'u1',
      serviceId: 's1',
      serviceModeId: 'm1',
      remaining: 15,
      purchased: 15,
      deducted: 0,
    });
    expect(code(await call(sim, DECR, { body: decrBody({ count: 15 }), token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 0, purchased: 15, deducted: 15 });
  });

  it('insert is idempotent on (service_id, service_mode_id, out_trade_no): same params no-op, different 2119002', async () => {
    const body = purchaseBody({ usage_times: 7, duration: 30 });
    expect(code(await call(sim, INSERT, { body, token }))).toBe(0);
    expect(code(await call(sim, INSERT, { body, token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 7, purchased: 7 });
    for (const v of [
      { usage_times: 8 },
      { open_id: 'u2' },
      { purchase_time: 1_700_000_000_001 },
      { duration: 31 },
    ]) {
      const a = await call(sim, INSERT, { body: { ...body, ...v }, token });
      expect({ v, code: code(a) }).toEqual({ v, code: 2119002 });
    }
    // The same out_trade_no under another mode is another purchase.
    expect(code(await call(sim, INSERT, { body: { ...body, service_mode_id: 'm2' }, token }))).toBe(0);
    expect(balanceOf(sim, 'u1', 's1', 'm2')).toMatchObject({ remaining: 7, purchased: 7 });
    expect(balanceOf(sim)).toMatchObject({ remaining: 7, purchased: 7 });
  });

  it('insert rejects invalid parameters with 2100005 naming the field', async () => {
    const cases: [string, unknown][] = [
      ['purchase_time', purchaseBody({ purchase_time: 1_700_000_000 })],
      ['purchase_time', purchaseBody({ purchase_time: '1700000000000' })],
      ['period_type', purchaseBody({ period_type: undefined })],
      ['usage_times', purchaseBody({ usage_times: -1 })],
      ['duration', purchaseBody({ duration: 1.5 })],
      ['open_id', purchaseBody({ open_id: '' })],
      ['out_trade_no', purchaseBody({ out_trade_no: 'z'.repeat(65) })],
      ['service_id', purchaseBody({ service_id: undefined })],
      ['service_mode_id', purchaseBody({ service_mode_id: 3 })],
    ];
    for (const [field, body] of cases) {
      const a = await call(sim, INSERT, { body, token });
      expect({ field, code: code(a) }).toEqual({ field, code: 2100005 });
      expect(a.json.data.description).toContain(field);
    }
    expect(sim.state().balances).toEqual([]);
  });

  it('delete removes the purchase and its usage_times (floor 0); unknown purchases are 2119003', async () => {
    const first = purchaseBody({ usage_times: 10 });
    const second = purchaseBody({ usage_times: 4 });
    await call(sim, INSERT, { body: first, token });
    await call(sim, INSERT, { body: second, token });
    const del = (b: Record<string, unknown>) => ({
      open_id: b.open_id,
      out_trade_no: b.out_trade_no,
      service_id: b.service_id,
      service_mode_id: b.service_mode_id,
    });
    expect(code(await call(sim, DELETE, { body: del(second), token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 10, purchased: 10 });
    expect(code(await call(sim, DELETE, { body: del(second), token }))).toBe(2119003);
    expect(code(await call(sim, DELETE, { body: { ...del(first), open_id: 'u2' }, token }))).toBe(2119003);
    expect(code(await call(sim, DELETE, { body: { ...del(first), service_mode_id: 'm9' }, token }))).toBe(
      2119003,
    );
    expect(code(await call(sim, DELETE, { body: { ...del(first), out_trade_no: 'never' }, token }))).toBe(
      2119003,
    );

    // 8 of the 10 used: deleting the purchase leaves 0, not -8.
    expect(code(await call(sim, DECR, { body: decrBody({ count: 8 }), token }))).toBe(0);
    expect(code(await call(sim, DELETE, { body: del(first), token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 0, purchased: 0, deducted: 8 });
    // Deleted, the out_trade_no can be imported again.
    expect(code(await call(sim, INSERT, { body: first, token }))).toBe(0);
    expect(balanceOf(sim)).toMatchObject({ remaining: 10 });
  });

  it('delete validates its parameters', async () => {
    const a = await call(sim, DELETE, {
      body: { open_id: 'u1', service_id: 's1', service_mode_id: 'm1' },
      token,
    });
    expect(code(a)).toBe(2100005);
    expect(a.json.data.description).toContain('out_trade_no');
  });

  it('lists one entry per bucket of that user and service', async () => {
    await call(sim, INSERT, {
      body: purchaseBody({ usage_times: 10, purchase_time: 1_700_000_000_000, duration: 30 }),
      token,
    });
    await call(sim, INSERT, { body: purchaseBody({ service_mode_id: 'm2', usage_times: 3 }), token });
    await call(sim, INSERT, { body: purchaseBody({ service_id: 's2', usage_times: 1 }), token });
    await call(sim, INSERT, { body: purchaseBody({ open_id: 'u2', usage_times: 1 }), token });
    await call(sim, DECR, { body: decrBody({ count: 4 }), token });

    const a = await call(sim, `${LIST}?open_id=u1&service_id=s1&is_test_env=false`, { token });
    expect(a.status).toBe(200);
    expect(code(a)).toBe(0);
    expect(a.json.extra.error_code).toBe(0);
    const list = a.json.data.purchase_info_list as Record<string, unknown>[];
    expect(list).toHaveLength(2);
    const m1 = list.find((p) => p.service_mode_id === 'm1');
    expect(m1).toEqual({
      service_id: 's1',
      service_name: 'Simulated service',
      service_status: 1,
      specification_type: 1,
      specification_title: 'm1',
      service_mode_id: 'm1',
      remain_service_times: 6,
      effective_time: 1_700_000_000_000,
      expire_time: 1_700_000_000_000 + 30 * 86_400_000,
    });
    expect(list.find((p) => p.service_mode_id === 'm2')).toMatchObject({ remain_service_times: 3 });

    const other = await call(sim, `${LIST}?open_id=u1&service_id=s2&is_test_env=false`, { token });
    expect(other.json.data.purchase_info_list).toEqual([
      expect.objectContaining({ service_id: 's2', remain_service_times: 1 }),
    ]);
    const none = await call(sim, `${LIST}?open_id=nobody&service_id=s1&is_test_env=false`, { token });
    expect(none.json.data.purchase_info_list).toEqual([]);
    expect(sim.state().contractViolations).toEqual([]);
  });

  it('the list takes only open_id, service_id and is_test_env: anything else is 2100005 and a contract violation', async () => {
    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 5 });
    const cases: [string, string][] = [
      // The seed SDK's camelCase spelling, alone or next to the right one.
      ['serviceId', 'serviceId=s1&open_id=u1&is_test_env=false'],
      ['serviceId', 'serviceId=s1&service_id=s1&open_id=u1&is_test_env=false'],
      ['service_id', 'open_id=u1&is_test_env=false'],
      ['service_id', 'service_id=&open_id=u1&is_test_env=false'],
      ['open_id', 'service_id=s1&is_test_env=false'],
      ['is_test_env', 'service_id=s1&open_id=u1'],
      ['is_test_env', 'service_id=s1&open_id=u1&is_test_env=1'],
      ['is_test_env', 'service_id=s1&open_id=u1&is_test_env=False'],
    ];
    for (const [field, query] of cases) {
      const a = await call(sim, `${LIST}?${query}`, { token });
      expect({ query, status: a.status, code: code(a) }).toEqual({ query, status: 200, code: 2100005 });
      expect(a.json.data.description).toContain(field);
      expect(a.json.data.purchase_info_list).toBeUndefined();
    }
    const violations = sim.state().contractViolations;
    expect(violations).toHaveLength(cases.length);
    expect(violations[0]).toEqual({
      path: '/market/service/user/purchase/list/',
      problem: expect.stringContaining('serviceId'),
      at: expect.any(Number),
    });
    violations.forEach((v, i) => {
      expect(v.problem).toContain(cases[i]![0]);
    });
  });

  it('every endpoint records what was wrong with a request it refused as invalid', async () => {
    await call(sim, DECR, { body: decrBody({ count: '3' }), token });
    await call(sim, INSERT, { body: purchaseBody({ purchase_time: 1_700_000_000 }), token });
    await call(sim, DELETE, { body: { open_id: 'u1', service_id: 's1', service_mode_id: 'm1' }, token });
    expect(sim.state().contractViolations.map((v) => [v.path, v.problem.split(' ')[0]])).toEqual([
      ['/market/service/user/remaintimes/decr/', 'count'],
      ['/market/service/user/insert/purchase/info/', 'purchase_time'],
      ['/market/service/user/delete/purchase/info/', 'out_trade_no'],
    ]);
    // A missing token is not a malformed request: refused, but not a violation.
    await call(sim, `${LIST}?serviceId=s1&open_id=u1`);
    expect(sim.state().contractViolations).toHaveLength(3);
  });

  it('the list needs a token', async () => {
    expect(code(await call(sim, `${LIST}?service_id=s1&open_id=u1&is_test_env=false`))).toBe(28001003);
  });

  it('test mode: remain_service_times is always 1 for a whitelisted open_id; others get 2190099', async () => {
    sim.setSettings({ testWhitelist: ['u1'] });
    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 42 });
    sim.setBalance({ openId: 'u2', serviceId: 's1', serviceModeId: 'm1', remaining: 42 });
    const a = await call(sim, `${LIST}?open_id=u1&service_id=s1&is_test_env=true`, { token });
    expect(code(a)).toBe(0);
    expect(a.json.data.purchase_info_list).toEqual([
      expect.objectContaining({ service_id: 's1', service_mode_id: 'm1', remain_service_times: 1 }),
    ]);
    const real = await call(sim, `${LIST}?open_id=u1&service_id=s1&is_test_env=false`, { token });
    expect(real.json.data.purchase_info_list).toEqual([
      expect.objectContaining({ remain_service_times: 42 }),
    ]);
    expect(code(await call(sim, `${LIST}?open_id=u2&service_id=s1&is_test_env=true`, { token }))).toBe(
      2190099,
    );
    expect(sim.state().testCalls).toEqual([
      { method: 'purchaseList', openId: 'u1', serviceId: 's1', at: expect.any(Number) },
    ]);
  });
});
