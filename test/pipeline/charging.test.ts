// The pipeline end to end on real Redis, real PostgreSQL and the simulator:
// batching, exact totals, attempts recorded, duplicates charged once.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fundUsers, makeEvents, type Pipeline, startPipeline } from '../support/pipeline.js';

describe('charging', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline({ label: 'charging', faults: { latencyMs: 5 } });
    fundUsers(p.sim, ['u1', 'u2', 'u3', 'u4']);
    await p.startWorker();
  });
  afterAll(async () => p.close());

  it('charges every event exactly once, in far fewer calls than events, recording every attempt', async () => {
    const events = makeEvents(2_000, ['u1', 'u2', 'u3', 'u4'], 'c');
    await p.send(events);
    await p.waitUntilSettled();
    await p.expectExactTotals();
    const calls = p.sim.state().calls.byPath['/market/service/user/remaintimes/decr/'] ?? 0;
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThan(events.length / 10);
    const batches = await p.db.chargeBatch.findMany({ include: { attemptsLog: true } });
    for (const b of batches) {
      expect(b.status).toBe('charged');
      expect(b.attemptsLog.length).toBeGreaterThanOrEqual(1);
      const last = b.attemptsLog.at(-1)!;
      expect(last).toMatchObject({
        outcome: 'success',
        outTradeNo: b.outTradeNo,
        count: b.count,
        httpStatus: 200,
      });
      expect(last.logid).toMatch(/^\w{10,}$/);
    }
  });

  it('counts an eventId once however often, however concurrently, and after its job is gone', async () => {
    const one = { eventId: 'dup-1', openId: 'u1', serviceId: 's1', serviceModeId: 'm1', count: 7 };
    const before = p.sim.state().balances.find((b) => b.openId === 'u1')!.deducted;
    await Promise.all(Array.from({ length: 20 }, () => p.send([one, { ...one }])));
    await p.waitUntilSettled();
    // Again, long after the first copy was charged and its BullMQ job removed.
    await p.send(Array.from({ length: 5 }, () => ({ ...one })));
    await sleep(1_000);
    await p.waitUntilSettled();
    const after = p.sim.state().balances.find((b) => b.openId === 'u1')!.deducted;
    expect(after - before).toBe(7);
    await p.expectExactTotals();
  });

  it('keeps test-environment events in their own batches, sent in test mode (nothing deducted)', async () => {
    p.sim.setSettings({ testWhitelist: ['u2'] });
    const events = makeEvents(50, ['u2'], 'env').map((e, i) => ({ ...e, isTestEnv: i % 2 === 0 }));
    await p.send(events);
    await p.waitUntilSettled();
    const testBatches = await p.db.chargeBatch.findMany({
      where: { key: { openId: 'u2', isTestEnv: true } },
    });
    expect(testBatches.length).toBeGreaterThan(0);
    expect(testBatches.every((b) => b.status === 'charged')).toBe(true);
    const testCalls = p.sim.state().testCalls.filter((c) => c.method === 'decr' && c.openId === 'u2');
    for (const b of testBatches) expect(testCalls.some((c) => c.outTradeNo === b.outTradeNo)).toBe(true);
    expect(p.sim.state().trades.some((t) => testBatches.some((b) => b.outTradeNo === t.outTradeNo))).toBe(
      false,
    );
    await p.expectExactTotals();
  });

  it('a test-mode batch of a user not on the test whitelist is refused and goes dead', async () => {
    await p.send([
      {
        eventId: 'tm-x',
        openId: 'not-whitelisted',
        serviceId: 's1',
        serviceModeId: 'm1',
        count: 2,
        isTestEnv: true,
      },
    ]);
    const deadline = Date.now() + 20_000;
    let batch = await p.db.chargeBatch.findFirst({ where: { key: { openId: 'not-whitelisted' } } });
    while (batch?.status !== 'dead' && Date.now() < deadline) {
      await sleep(100);
      batch = await p.db.chargeBatch.findFirst({ where: { key: { openId: 'not-whitelisted' } } });
    }
    expect(batch).toMatchObject({ status: 'dead', lastErrorCode: 2190099 });
    expect(batch!.deadReason).toMatch(/^permanent_error: forbidden 2190099/);
    p.sent.delete('tm-x'); // never charged: out of the exact totals
  });
});
