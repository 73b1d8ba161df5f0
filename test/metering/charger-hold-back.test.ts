// A key whose events are still arriving waits for its batch (METER_BATCH_MAX_HOLD_MS),
// so that a burst costs one call; never longer than the hold after its oldest event.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChargerHarness, startChargerHarness } from './charger-harness.js';

let h: ChargerHarness;
beforeAll(async () => {
  h = await startChargerHarness('hold');
});
afterAll(async () => h.close());

const agePending = (keyId: number, oldestMs: number, newestMs: number) =>
  h.db.$executeRaw`
    UPDATE usage_event SET received_at = CASE WHEN seq = (SELECT min(seq) FROM usage_event WHERE key_id = ${keyId})
                                              THEN now() - make_interval(secs => ${oldestMs / 1000})
                                              ELSE now() - make_interval(secs => ${newestMs / 1000}) END
    WHERE key_id = ${keyId}`;

describe('holding a batch back while its events arrive', () => {
  it('holds while the newest event is within half a window, then charges them all in one call', async () => {
    const keyId = await h.seedKey('hold-a', [1, 2, 3]);
    const charger = h.charger({ windowMs: 1_000, holdBackMs: 5_000 });
    expect(await charger.chargeOrHold(keyId)).toMatchObject({
      outcome: 'held',
      holdMsLeft: expect.toSatisfy((ms: number) => ms > 0 && ms <= 500),
    });
    expect(await h.db.chargeBatch.count({ where: { keyId } })).toBe(0);
    // A held run writes nothing: not even a lease.
    expect(await h.db.$queryRaw`SELECT key_id FROM key_lease WHERE key_id = ${keyId}`).toEqual([]);
    await agePending(keyId, 700, 600); // the burst has stopped
    expect(await charger.chargeKey(keyId)).toBe('charged');
    expect(await h.db.chargeBatch.findFirstOrThrow({ where: { keyId } })).toMatchObject({
      count: 6,
      eventCount: 3,
    });
  });

  it('never holds past the hold after the oldest pending event, however busy the key', async () => {
    const keyId = await h.seedKey('hold-b', [4, 4]);
    await agePending(keyId, 5_100, 10); // still arriving, but the oldest has waited the hold
    expect(await h.charger({ windowMs: 1_000, holdBackMs: 5_000 }).chargeKey(keyId)).toBe('charged');
  });

  it('with no hold (0) charges at once', async () => {
    const keyId = await h.seedKey('hold-c', [1]);
    expect(await h.charger({ windowMs: 1_000, holdBackMs: 0 }).chargeKey(keyId)).toBe('charged');
  });

  it('an open batch is never held: it is sent again at once', async () => {
    const keyId = await h.seedKey('hold-d', [2]);
    const { batch } = await (await import('../../src/ledger/batches.js')).formBatch(h.db, {
      keyId,
      outTradeNo: 'HOLD-D',
      maxEvents: 10,
      maxCount: 10,
      deadlineSec: 60,
    });
    expect(batch).toBeDefined();
    await h.seedKey('hold-d', [3]); // a new event keeps arriving
    expect(await h.charger({ windowMs: 1_000, holdBackMs: 5_000 }).chargeKey(keyId)).toBe('charged');
    expect(h.sim.state().trades.find((t) => t.outTradeNo === 'HOLD-D')?.count).toBe(2);
  });
});
