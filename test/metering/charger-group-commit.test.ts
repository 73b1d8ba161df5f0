// Charge runs whose statements are sent together (src/ledger/charge-run-statements.ts):
// two chargers race many runs over the same keys at once, through busy answers and
// deductions whose answer was lost, and every key is charged exactly its uses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DouyinError } from '../../src/douyin/index.js';
import { insertEvents } from '../../src/ledger/events.js';
import { RetryableChargeError } from '../../src/metering/errors.js';
import { addEndpoint } from '../support/notify.js';
import { type ChargerHarness, interceptDecr, startChargerHarness } from './charger-harness.js';

let h: ChargerHarness;
beforeAll(async () => {
  h = await startChargerHarness('group_commit');
});
afterAll(async () => h.close());

describe('charge runs sharing statements', () => {
  it.each([
    ['', false],
    // With an endpoint wanting every batch notification, the outbox triggers do their
    // whole work inside the shared statements; and charging is paused every third
    // round (runs stop before their requests leave), as an operator might.
    [' with the notification triggers writing and pauses coming and going', true],
  ])(
    'two chargers racing runs over the same keys charge each key exactly once per use%s',
    async (_what, busy) => {
      const KEYS = 30;
      const p = busy ? 'gcn' : 'gc';
      if (busy)
        await addEndpoint(h.db, 'http://127.0.0.1:9/x', [
          'batch.charged',
          'batch.insufficient',
          'batch.partial',
          'batch.dead',
        ]);
      let round = 0;
      const isPaused = async () => busy && round % 3 === 2 && Math.random() < 0.7;
      const expected = new Map<string, number>();
      const keyIds: number[] = [];
      for (let k = 0; k < KEYS; k++) {
        const openId = `${p}-${k}`;
        const counts = [1 + (k % 3), 2, 1 + (k % 5)];
        keyIds.push(await h.seedKey(openId, counts));
        expected.set(
          openId,
          counts.reduce((a, b) => a + b, 0),
        );
      }
      h.sim.setFaults({ busyRate: 0.2, appliedButLostRate: 0.2 });
      const chargers = [
        h.charger({ workerId: `${p}-A`, isPaused }),
        h.charger({ workerId: `${p}-B`, isPaused }),
      ];
      const outcomes: string[] = [];
      // Rounds of every run at once: both chargers' runs of a key race for its lease;
      // a failed call is retried by the next round, as BullMQ would. New events keep
      // arriving in the first rounds, so keys get later batches beside charged ones.
      for (round = 0; round < 60; round++) {
        if (round < 5) {
          await insertEvents(
            h.db,
            keyIds.map((keyId, k) => ({
              eventId: `${p}-late-${round}-${k}`,
              keyId,
              count: 1 + round,
              occurredAt: null,
              enqueuedAt: null,
              attributes: null,
            })),
          );
          for (let k = 0; k < KEYS; k++) expected.set(`${p}-${k}`, expected.get(`${p}-${k}`)! + 1 + round);
        }
        const results = await Promise.all(
          keyIds.flatMap((keyId) =>
            chargers.map((c) =>
              c.chargeKey(keyId).catch((err) => {
                if (err instanceof RetryableChargeError) return 'retry';
                throw err;
              }),
            ),
          ),
        );
        outcomes.push(...results);
        if (round >= 5 && round % 3 !== 2 && results.every((r) => r === 'idle')) break;
      }
      h.sim.setFaults({ busyRate: 0, appliedButLostRate: 0 });

      const deducted = new Map(h.sim.state().balances.map((b) => [b.openId, b.deducted]));
      for (const [openId, uses] of expected)
        expect.soft([openId, deducted.get(openId)]).toEqual([openId, uses]);
      // Every batch charged (a retry re-sends the same out_trade_no), each of them deducted once.
      const batches = await h.db.chargeBatch.findMany({ where: { keyId: { in: keyIds } } });
      expect(batches.filter((b) => b.status !== 'charged')).toEqual([]);
      const trades = new Map(h.sim.state().trades.map((t) => [t.outTradeNo, t.count]));
      for (const b of batches)
        expect.soft([b.outTradeNo, trades.get(b.outTradeNo)]).toEqual([b.outTradeNo, b.count]);
      expect(batches.length).toBeGreaterThan(KEYS); // later events made later batches
      expect(h.sim.state().contractViolations).toEqual([]);
      // The faults were met: some calls failed and were retried.
      expect(outcomes).toContain('retry');
      if (busy) {
        expect(outcomes).toContain('paused');
        // Each charged batch notified exactly once, by its one settlement.
        const notes = await h.db.notification.findMany({ where: { type: 'batch.charged' } });
        const notified = notes.map((n) => (n.data as { outTradeNo: string }).outTradeNo).sort();
        expect(notified).toEqual(batches.map((b) => b.outTradeNo).sort());
        expect(await h.db.notification.count({ where: { type: { not: 'batch.charged' } } })).toBe(0);
      }
    },
  );

  it('records an answer whose words the ledger cannot hold as given, cleaned, on the common and the transaction path', async () => {
    const busyKey = await h.seedKey('gc-text-busy', [1]);
    const deadKey = await h.seedKey('gc-text-dead', [1]);
    const words = 'busy\0 now \ud800!';
    const charger = h.charger({
      api: interceptDecr(h.client, (input) => {
        const permanent = input.openId === 'gc-text-dead';
        throw new DouyinError({
          kind: permanent ? 'invalid_request' : 'transient',
          description: words,
          logid: `log\0${input.openId}`,
        });
      }),
    });
    await expect(charger.chargeKey(busyKey)).rejects.toThrow(RetryableChargeError); // a failed attempt, recorded
    expect(await charger.chargeKey(deadKey)).toBe('dead'); // settled dead, with its attempt
    const attempts = await h.db.callAttempt.findMany({
      where: { batch: { keyId: { in: [busyKey, deadKey] } } },
      orderBy: { id: 'asc' },
    });
    expect(attempts.map((a) => [a.description, a.logid])).toEqual([
      ['busy now \ufffd!', 'loggc-text-busy'],
      ['busy now \ufffd!', 'loggc-text-dead'],
    ]);
    const dead = await h.db.chargeBatch.findFirstOrThrow({ where: { keyId: deadKey } });
    expect(dead.deadReason).toContain('busy now \ufffd!');
  });
});
