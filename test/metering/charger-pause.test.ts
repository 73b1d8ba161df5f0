// The charger's own checks of a pause (src/metering/charger.ts): before it takes its
// key, and right before its request leaves. A run paused at the last moment sends
// nothing, counts no attempt, and leaves its batch open to be sent as it is later.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChargerHarness, startChargerHarness } from './charger-harness.js';

let h: ChargerHarness;
beforeAll(async () => {
  h = await startChargerHarness('charger-pause');
});
afterAll(async () => h.close());

describe('a paused charger', () => {
  it('takes no key while paused', async () => {
    const keyId = await h.seedKey('cp-before', [2]);
    const charger = h.charger({ isPaused: async () => true });
    expect(await charger.chargeKey(keyId)).toBe('paused');
    expect(await h.db.chargeBatch.count({ where: { keyId } })).toBe(0);
    expect(await h.db.keyLease.count({ where: { keyId, owner: { not: null } } })).toBe(0);
  });

  it('sends nothing when the pause comes while the run waits for its slot; the same batch goes after the resume', async () => {
    const keyId = await h.seedKey('cp-slot', [2, 3]);
    let asked = 0;
    let paused = false;
    // The first check (before the lease) says no; the pause comes during the wait for the slot.
    const limiter = h.limiter();
    const acquire = limiter.acquire.bind(limiter);
    limiter.acquire = async (...args: Parameters<typeof acquire>) => {
      paused = true;
      return acquire(...args);
    };
    const charger = h.charger({
      isPaused: async () => {
        asked += 1;
        return paused;
      },
      limiter,
    });
    const before = h.sim.state().trades.length;
    expect(await charger.chargeKey(keyId)).toBe('paused');
    expect(asked).toBe(2);
    expect(h.sim.state().trades.length).toBe(before);
    const [batch] = await h.db.chargeBatch.findMany({ where: { keyId } });
    expect(batch).toMatchObject({ status: 'open', count: 5, attempts: 0, firstAttemptAt: null });
    expect(await h.db.callAttempt.count({ where: { batchId: batch!.id } })).toBe(0);

    paused = false;
    const resumed = h.charger({ isPaused: async () => false });
    expect(await resumed.chargeKey(keyId)).toBe('charged');
    const trades = h.sim.state().trades.filter((t) => t.openId === 'cp-slot');
    expect(trades.map((t) => [t.outTradeNo, t.count])).toEqual([[batch!.outTradeNo, 5]]);
  });
});
