// A user whose remaining times run out: both policies, exact accounting.
import { afterEach, describe, expect, it } from 'vitest';
import { countWithStatus, keyStatuses } from '../support/ledger.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';

const ev = (id: string, openId: string, count: number) => ({
  eventId: id,
  openId,
  serviceId: 's1',
  serviceModeId: 'm1',
  count,
});

describe('insufficient remaining times', () => {
  let p: Pipeline;
  afterEach(async () => p.close());

  it('reject: charges nothing for the refused batch and marks it and its events insufficient', async () => {
    p = await startPipeline({ label: 'rej', env: { METER_BATCH_WINDOW_MS: '300' } });
    p.sim.setBalance({ openId: 'poor', serviceId: 's1', serviceModeId: 'm1', remaining: 5 });
    await p.send([ev('r1', 'poor', 3), ev('r2', 'poor', 4)]);
    await p.startWorker();
    await p.waitUntilSettled(30_000);
    const batch = await p.db.chargeBatch.findFirstOrThrow({ include: { attemptsLog: true } });
    expect(batch).toMatchObject({ status: 'insufficient', count: 7, chargedCount: 0 });
    expect(batch.attemptsLog.at(-1)).toMatchObject({ errorKind: 'insufficient_balance', errorCode: 2119001 });
    expect(await countWithStatus(p.db, 'insufficient')).toBe(2);
    const bal = p.sim.state().balances.find((b) => b.openId === 'poor')!;
    expect(bal).toMatchObject({ remaining: 5, deducted: 0 });
  });

  it('partial: deducts what is left under a derived out_trade_no and records the rest as overage', async () => {
    p = await startPipeline({
      label: 'part',
      env: { METER_BATCH_WINDOW_MS: '300', METER_INSUFFICIENT_POLICY: 'partial' },
    });
    p.sim.setBalance({ openId: 'poor', serviceId: 's1', serviceModeId: 'm1', remaining: 5 });
    await p.send([ev('p1', 'poor', 3), ev('p2', 'poor', 4)]);
    await p.startWorker();
    await p.waitUntilSettled(30_000);
    const parent = await p.db.chargeBatch.findFirstOrThrow({ where: { parentId: null } });
    expect(parent).toMatchObject({ status: 'partial', count: 7, chargedCount: 5, overageCount: 2 });
    const derived = await p.db.chargeBatch.findFirstOrThrow({ where: { parentId: parent.id } });
    expect(derived).toMatchObject({ status: 'charged', count: 5, outTradeNo: `${parent.outTradeNo}-p1` });
    const state = p.sim.state();
    expect(state.balances.find((b) => b.openId === 'poor')).toMatchObject({ remaining: 0, deducted: 5 });
    expect(state.trades.map((t) => [t.outTradeNo, t.count])).toEqual([[derived.outTradeNo, 5]]);
    expect(await keyStatuses(p.db, parent.keyId)).toEqual(['charged', 'overage']);
  });
});
