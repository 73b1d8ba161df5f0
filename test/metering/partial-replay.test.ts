// Partial policy and replay: the uses deducted for a parent batch never exceed its
// count, whatever is replayed. Scenario of the money-safety issue: 8 uses, 5
// remaining, the derived call dies with a permanent error, the user tops up, the
// operator replays every dead batch.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DouyinError } from '../../src/douyin/index.js';
import { replayBatches } from '../../src/metering/replay.js';
import { resolveBatches } from '../../src/metering/resolve.js';
import { keyStatuses } from '../support/ledger.js';
import { uniquePrefix } from '../support/services.js';
import { type ChargerHarness, interceptDecr, startChargerHarness } from './charger-harness.js';

let h: ChargerHarness;
beforeAll(async () => {
  h = await startChargerHarness('partial-replay');
});
afterAll(async () => h.close());

const deducted = (openId: string) =>
  h.sim
    .state()
    .trades.filter((t) => t.openId === openId)
    .reduce((sum, t) => sum + t.count, 0);

describe('partial policy replay', () => {
  it('replays only the parent, re-sending its derived batch first: 8 uses never deduct more than 8', async () => {
    const openId = 'pr-user';
    const keyId = await h.seedKey(openId, [3, 3, 2], 5);
    let failDerived = true;
    const api = interceptDecr(h.client, (input) => {
      if (failDerived && input.outTradeNo.endsWith('-p1')) {
        throw new DouyinError({ kind: 'invalid_request', errorCode: 2100005, description: 'test: refused' });
      }
    });
    const charger = h.charger({ api, insufficientPolicy: 'partial' });
    expect(await charger.chargeKey(keyId)).toBe('dead');

    const [parent, derived] = await h.db.chargeBatch.findMany({ where: { keyId }, orderBy: { id: 'asc' } });
    expect(parent).toMatchObject({ status: 'dead', count: 8, parentId: null });
    expect(parent!.deadReason).toMatch(/^derived_dead: /);
    expect(derived).toMatchObject({ status: 'dead', count: 5, parentId: parent!.id });
    expect(deducted(openId)).toBe(0);

    // The user tops up; the operator replays.
    h.sim.setBalance({ openId, serviceId: 's1', serviceModeId: 'm1', remaining: 100 });
    failDerived = false;
    const deps = { db: h.db, redis: h.redis, prefix: uniquePrefix('pr') };
    const alone = await replayBatches(deps, { id: derived!.id }, 'test');
    expect(alone.replayed).toEqual([]);
    expect(alone.skipped[0]!.reason).toMatch(/derived batch of .*replay the parent/);

    const all = await replayBatches(deps, { allDead: true }, 'test');
    expect(all).toEqual({ replayed: [String(parent!.id)], skipped: [] });
    expect(await h.db.chargeBatch.findUniqueOrThrow({ where: { id: derived!.id } })).toMatchObject({
      status: 'open',
    });

    // The derived batch goes first, under its own out_trade_no; its success settles the parent.
    expect(await charger.chargeKey(keyId)).toBe('partial');
    expect(await charger.chargeKey(keyId)).toBe('idle');
    expect(h.sim.state().trades.filter((t) => t.openId === openId)).toEqual([
      expect.objectContaining({ outTradeNo: derived!.outTradeNo, count: 5 }),
    ]);
    expect(await h.db.chargeBatch.findUniqueOrThrow({ where: { id: parent!.id } })).toMatchObject({
      status: 'partial',
      chargedCount: 5,
      overageCount: 3,
    });
    expect(await keyStatuses(h.db, keyId)).toEqual(['charged', 'overage', 'overage']);

    // Nothing about this parent replays again.
    const again = await replayBatches(deps, { allDead: true }, 'test');
    expect(again.replayed).toEqual([]);
    expect(deducted(openId)).toBeLessThanOrEqual(8);
    const audits = await h.db.operatorAudit.findMany({ where: { action: 'batch.replay' } });
    expect(audits).toEqual([
      expect.objectContaining({
        target: String(parent!.id),
        details: expect.objectContaining({ reopenedDerived: [String(derived!.id)] }),
      }),
    ]);
  });

  it('resolves a parent and its dead derived batch given together, parent first: the derived one is taken first', async () => {
    const keyId = await h.seedKey('pr-both', [3, 3, 2], 5);
    const api = interceptDecr(h.client, (input) => {
      if (input.outTradeNo.endsWith('-p1'))
        throw new DouyinError({ kind: 'invalid_request', errorCode: 2100005, description: 'test: refused' });
    });
    expect(await h.charger({ api, insufficientPolicy: 'partial' }).chargeKey(keyId)).toBe('dead');
    const [parent, derived] = await h.db.chargeBatch.findMany({ where: { keyId }, orderBy: { id: 'asc' } });
    const deps = { db: h.db, redis: h.redis, prefix: uniquePrefix('pr-both') };
    // The parent first in the request: alone it would be refused ("resolve that one first").
    const r = await resolveBatches(deps, [parent!.id, derived!.id], 'uncharged', 'op');
    expect(r).toEqual({ resolved: [String(derived!.id), String(parent!.id)], skipped: [] });
    expect((await h.db.chargeBatch.findUniqueOrThrow({ where: { id: derived!.id } })).status).toBe('voided');
    expect((await h.db.chargeBatch.findUniqueOrThrow({ where: { id: parent!.id } })).status).toBe('voided');
  });

  it('resolves a dead derived batch first: charged makes its parent partial; the parent alone is refused', async () => {
    const openId = 'pr-resolve';
    const keyId = await h.seedKey(openId, [3, 3, 2], 5);
    const api = interceptDecr(h.client, (input) => {
      if (input.outTradeNo.endsWith('-p1'))
        throw new DouyinError({ kind: 'network', description: 'test: lost' });
    });
    // The derived call keeps failing transiently until its deadline: outcome unknown.
    const charger = h.charger({ api, insufficientPolicy: 'partial', deadlineSec: 1 });
    await expect(charger.chargeKey(keyId)).rejects.toThrow(/lost/);
    await sleep(1_100);
    expect(await charger.chargeKey(keyId)).toBe('dead');
    const [parent, derived] = await h.db.chargeBatch.findMany({ where: { keyId }, orderBy: { id: 'asc' } });
    expect([parent!.status, derived!.status]).toEqual(['dead', 'dead']);

    const deps = { db: h.db, redis: h.redis, prefix: uniquePrefix('pr2') };
    const refused = await resolveBatches(deps, [parent!.id], 'uncharged', 'op');
    expect(refused.skipped[0]!.reason).toMatch(new RegExp(`derived batch ${derived!.id} .*5 uses.* is dead`));
    // The operator finds the 5 uses deducted on Douyin.
    expect((await resolveBatches(deps, [derived!.id], 'charged', 'op')).resolved).toEqual([
      String(derived!.id),
    ]);
    expect(await h.db.chargeBatch.findUniqueOrThrow({ where: { id: parent!.id } })).toMatchObject({
      status: 'partial',
      chargedCount: 5,
      overageCount: 3,
    });
    expect(await h.db.chargeBatch.findUniqueOrThrow({ where: { id: derived!.id } })).toMatchObject({
      status: 'charged',
      resolvedAs: 'charged',
      resolvedBy: 'op',
    });
    // Nothing of this parent is sent again.
    expect(await charger.chargeKey(keyId)).toBe('idle');
    expect((await replayBatches(deps, { id: parent!.id }, 'op')).replayed).toEqual([]);
  });

  it('never resolves as uncharged a batch Douyin answered success for', async () => {
    const keyId = await h.seedKey('pr-success', [2]);
    const refusing = h.charger({
      api: interceptDecr(h.client, () => {
        throw new DouyinError({ kind: 'invalid_request', errorCode: 2100005, description: 'test: refused' });
      }),
    });
    expect(await refusing.chargeKey(keyId)).toBe('dead');
    const batch = await h.db.chargeBatch.findFirstOrThrow({ where: { keyId } });
    // A success on record (e.g. from before an upgrade) for this dead batch.
    await h.db.callAttempt.create({
      data: {
        batchId: batch.id,
        attemptNo: 9,
        outTradeNo: batch.outTradeNo,
        count: 2,
        startedAt: new Date(),
        durationMs: 1,
        outcome: 'success',
        logid: 'LOG-OK',
      },
    });
    const deps = { db: h.db, redis: h.redis, prefix: uniquePrefix('pr3') };
    const r = await resolveBatches(deps, [batch.id], 'uncharged', 'op');
    expect(r.skipped).toEqual([
      { id: String(batch.id), reason: expect.stringMatching(/logid LOG-OK.*resolve it as charged/) },
    ]);
    expect((await resolveBatches(deps, [batch.id], 'charged', 'op')).resolved).toEqual([String(batch.id)]);
  });
});
