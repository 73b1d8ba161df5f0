// Stale runs: a charge run that lost its key's lease (a stall longer than the
// lease, as after a lost BullMQ lock) can neither send nor settle, and a success
// it receives anyway is recorded with an alert, never dropped.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DouyinError, RateLimiter, type Slot } from '../../src/douyin/index.js';
import type { MeterDouyinApi } from '../../src/metering/interfaces.js';
import { resolveBatches } from '../../src/metering/resolve.js';
import { registry } from '../../src/metrics.js';
import { keyStatuses } from '../support/ledger.js';
import { type ChargerHarness, gate, interceptDecr, startChargerHarness } from './charger-harness.js';

let h: ChargerHarness;
beforeAll(async () => {
  h = await startChargerHarness('lease');
});
afterAll(async () => h.close());

/** A limiter that holds its first caller at `where` until the test opens the gate. */
class HeldLimiter extends RateLimiter {
  readonly held = gate();
  private holding = true;
  constructor(
    h: ChargerHarness,
    private readonly where: 'slot' | 'send',
  ) {
    super({ redis: h.redis, key: `lease-held-${where}-${Math.random()}`, qps: 1_000 });
  }
  override async acquire(signal?: AbortSignal, leadMs = 0): Promise<Slot> {
    const slot = await super.acquire(signal, leadMs);
    if (this.where === 'slot' && this.holding) {
      this.holding = false;
      await this.held.wait;
    }
    return slot;
  }
  override async until(slot: Slot, signal?: AbortSignal) {
    const onTime = await super.until(slot, signal);
    return async (s?: AbortSignal) => {
      if (this.where === 'send' && this.holding) {
        this.holding = false;
        await this.held.wait;
      }
      await onTime(s);
    };
  }
}

async function waitFor(what: () => Promise<boolean>) {
  const deadline = Date.now() + 10_000;
  while (!(await what())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(20);
  }
}

const decrCalls = () => h.sim.state().calls.byPath['/market/service/user/remaintimes/decr/'] ?? 0;
const deducted = (openId: string) => h.sim.state().balances.find((b) => b.openId === openId)?.deducted ?? 0;

/** The simulator's API, with each DecrUserRemainTimes answer held until `release` (the call itself is applied). */
function slowAnswers(release: Promise<void>): MeterDouyinApi {
  return {
    decrUserRemainTimes: async (input, opts) => {
      const res = await h.client.decrUserRemainTimes(input, opts);
      await release;
      return res;
    },
    getUserServicePurchaseList: h.client.getUserServicePurchaseList.bind(h.client),
  };
}

const strayMetric = async () =>
  (await registry.getSingleMetric('um_stray_success_total')!.get()).values[0]?.value ?? 0;

describe('two chargers on one key', () => {
  it('a run held at its slot past its lease sends nothing once another run took the key over', async () => {
    const keyId = await h.seedKey('lease-slot', [3, 4]);
    // A first run leaves the batch open after a transient failure.
    const failing = h.charger({
      api: interceptDecr(h.client, () => {
        throw new DouyinError({ kind: 'transient', description: 'test: busy' });
      }),
    });
    await expect(failing.chargeKey(keyId)).rejects.toThrow(/busy/);
    const batch = await h.db.chargeBatch.findFirstOrThrow({ where: { keyId } });
    expect(batch).toMatchObject({ status: 'open', count: 7, attempts: 1 });

    const heldLimiter = new HeldLimiter(h, 'slot');
    const a = h.charger({ workerId: 'A', leaseMs: 300, limiter: heldLimiter });
    const runA = a.chargeKey(keyId);
    await waitFor(async () => (await h.db.keyLease.findUnique({ where: { keyId } }))?.owner === 'A');
    await sleep(400); // A's lease runs out while it is held

    const b = h.charger({ workerId: 'B' });
    expect(await b.chargeKey(keyId)).toBe('charged');
    const callsBefore = decrCalls();
    heldLimiter.held.open();
    expect(await runA).toBe('stale');
    expect(decrCalls()).toBe(callsBefore); // A sent nothing

    expect(h.sim.state().trades.filter((t) => t.outTradeNo === batch.outTradeNo)).toEqual([
      expect.objectContaining({ count: 7 }),
    ]);
    const attempts = await h.db.callAttempt.findMany({
      where: { batchId: batch.id },
      orderBy: { id: 'asc' },
    });
    expect(attempts.map((x) => [x.outcome, x.workerId])).toEqual([
      ['error', 'lease-worker'],
      ['success', 'B'],
    ]);
    expect(await h.db.chargeAlert.count({ where: { batchId: batch.id } })).toBe(0);
  });

  it('a success that reaches a run after another settled the batch is recorded with an alert', async () => {
    const keyId = await h.seedKey('lease-send', [2, 2]);
    const strayBefore = await strayMetric();
    // A's call reaches Douyin and is applied, but its answer is held up (a stalled
    // process) longer than A's lease.
    const answer = gate();
    const a = h.charger({
      workerId: 'A2',
      leaseMs: 300,
      api: slowAnswers(answer.wait),
    });
    const runA = a.chargeKey(keyId);
    await waitFor(async () => h.sim.state().trades.some((t) => t.openId === 'lease-send'));
    await sleep(400);

    const b = h.charger({ workerId: 'B2' });
    expect(await b.chargeKey(keyId)).toBe('charged'); // the same out_trade_no: Douyin deduplicates
    answer.open();
    expect(await runA).toBe('stale');

    const batch = await h.db.chargeBatch.findFirstOrThrow({ where: { keyId } });
    expect(batch).toMatchObject({ status: 'charged', count: 4 });
    expect(deducted('lease-send')).toBe(4);
    const attempts = await h.db.callAttempt.findMany({
      where: { batchId: batch.id },
      orderBy: { id: 'asc' },
    });
    expect(attempts.map((x) => [x.attemptNo, x.outcome, x.workerId])).toEqual([
      [1, 'success', 'B2'],
      [2, 'success', 'A2'],
    ]);
    const alerts = await h.db.chargeAlert.findMany({ where: { batchId: batch.id } });
    expect(alerts).toEqual([
      expect.objectContaining({
        kind: 'stray_success',
        outTradeNo: batch.outTradeNo,
        details: expect.objectContaining({ why: 'lease_lost', settledNow: false, count: 4, workerId: 'A2' }),
      }),
    ]);
    expect(await strayMetric()).toBe(strayBefore + 1);
  });

  it('a late success for a batch that went dead meanwhile settles it as charged; it cannot be resolved as uncharged', async () => {
    const keyId = await h.seedKey('lease-dead', [3]);
    const answer = gate();
    const a = h.charger({ workerId: 'A4', leaseMs: 300, deadlineSec: 1, api: slowAnswers(answer.wait) });
    const runA = a.chargeKey(keyId);
    await waitFor(async () => h.sim.state().trades.some((t) => t.openId === 'lease-dead'));
    await sleep(1_100); // past the batch's deadline
    // B finds the batch past its deadline: dead, without a call.
    expect(await h.charger({ workerId: 'B4' }).chargeKey(keyId)).toBe('dead');
    expect((await h.db.chargeBatch.findFirstOrThrow({ where: { keyId } })).status).toBe('dead');

    answer.open();
    expect(await runA).toBe('stale');
    const batch = await h.db.chargeBatch.findFirstOrThrow({ where: { keyId } });
    expect(batch).toMatchObject({ status: 'charged', chargedCount: 3, deadReason: null });
    expect(await keyStatuses(h.db, keyId)).toEqual(['charged']);
    expect(await h.db.chargeAlert.findMany({ where: { batchId: batch.id } })).toEqual([
      expect.objectContaining({ details: expect.objectContaining({ why: 'lease_lost', settledNow: true }) }),
    ]);
    const r = await resolveBatches(
      { db: h.db, redis: h.redis, prefix: 'lease-dead' },
      [batch.id],
      'uncharged',
      't',
    );
    expect(r.resolved).toEqual([]);
    expect(deducted('lease-dead')).toBe(3);
  });

  it('a run whose lease ran out while it waited, with no one taking over, still charges', async () => {
    const keyId = await h.seedKey('lease-alone', [5]);
    const heldLimiter = new HeldLimiter(h, 'slot');
    const a = h.charger({ workerId: 'A5', leaseMs: 200, limiter: heldLimiter });
    const runA = a.chargeKey(keyId);
    await waitFor(async () => (await h.db.keyLease.findUnique({ where: { keyId } }))?.owner === 'A5');
    await sleep(700);
    heldLimiter.held.open();
    expect(await runA).toBe('charged');
    expect(deducted('lease-alone')).toBe(5);
  });

  it('a run finds the key busy while another holds an unexpired lease', async () => {
    const keyId = await h.seedKey('lease-busy', [1]);
    const heldLimiter = new HeldLimiter(h, 'slot');
    const a = h.charger({ workerId: 'A3', limiter: heldLimiter });
    const runA = a.chargeKey(keyId);
    await waitFor(async () => (await h.db.keyLease.findUnique({ where: { keyId } }))?.owner === 'A3');
    await expect(h.charger({ workerId: 'B3' }).chargeKey(keyId)).rejects.toThrow(/leased by another/);
    heldLimiter.held.open();
    expect(await runA).toBe('charged');
    // A released its lease at the end: the next run need not wait for it to expire.
    expect(await h.charger({ workerId: 'B3' }).chargeKey(keyId)).toBe('idle');
  });
});
