// The outbox's triggers on the real ledger, driven by the charger one run at a time:
// which state changes write a notification, and which do not (a derived batch's
// refusal or death under the partial policy is not the user's; nothing is written
// while no endpoint wants the type; an operator's resolve reports batch.charged).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DouyinError } from '../../src/douyin/index.js';
import { resolveBatches } from '../../src/metering/resolve.js';
import { type ChargerHarness, interceptDecr, startChargerHarness } from '../metering/charger-harness.js';
import { addEndpoint } from '../support/notify.js';
import { uniquePrefix } from '../support/services.js';

let h: ChargerHarness;
beforeAll(async () => {
  h = await startChargerHarness('notify-triggers');
});
afterAll(async () => h.close());
beforeEach(async () => {
  await h.db.notification.deleteMany();
  await h.db.webhookEndpoint.deleteMany();
});

const written = async (): Promise<Record<string, unknown>[]> =>
  (await h.db.notification.findMany({ orderBy: { seq: 'asc' } })).map((n) => ({
    type: n.type,
    ...(n.data as Record<string, unknown>),
  }));
const BATCH_TYPES = ['batch.insufficient', 'batch.partial', 'batch.dead', 'batch.charged'] as const;

describe('notification triggers', () => {
  it('partial policy: a refused derived batch writes no batch.insufficient; the parent one batch.partial', async () => {
    await addEndpoint(h.db, 'http://127.0.0.1:9/x', [...BATCH_TYPES]);
    const openId = 'nt-partial';
    const keyId = await h.seedKey(openId, [3, 3, 2], 5);
    // Douyin refuses the first derived call (the user spent uses elsewhere meanwhile).
    let refuse = true;
    const api = interceptDecr(h.client, (input) => {
      if (refuse && input.outTradeNo.endsWith('-p1')) {
        refuse = false;
        h.sim.setBalance({ openId, serviceId: 's1', serviceModeId: 'm1', remaining: 4 });
        throw new DouyinError({
          kind: 'insufficient_balance',
          errorCode: 2119001,
          description: 'test: refused',
        });
      }
    });
    const charger = h.charger({ api, insufficientPolicy: 'partial' });
    for (let i = 0; i < 5 && (await charger.chargeKey(keyId)) !== 'partial'; i++);
    const batches = await h.db.chargeBatch.findMany({ where: { keyId }, orderBy: { id: 'asc' } });
    expect(batches.map((b) => [b.status, b.count])).toEqual([
      ['partial', 8],
      ['insufficient', 5],
      ['charged', 4],
    ]);
    const n = await written();
    expect(n.map((x) => x.type)).toEqual(['batch.charged', 'batch.partial']);
    expect(n[0]).toMatchObject({
      batchId: String(batches[2]!.id),
      parentBatchId: String(batches[0]!.id),
      count: 4,
    });
    expect(n[1]).toMatchObject({ batchId: String(batches[0]!.id), chargedCount: 4, overageCount: 4 });
  });

  it('partial policy: a dead derived batch writes one batch.dead, its parent’s', async () => {
    await addEndpoint(h.db, 'http://127.0.0.1:9/x', [...BATCH_TYPES]);
    const keyId = await h.seedKey('nt-dead', [3, 3, 2], 5);
    const api = interceptDecr(h.client, (input) => {
      if (input.outTradeNo.endsWith('-p1'))
        throw new DouyinError({ kind: 'invalid_request', errorCode: 2100005, description: 'test: refused' });
    });
    expect(await h.charger({ api, insufficientPolicy: 'partial' }).chargeKey(keyId)).toBe('dead');
    const [parent] = await h.db.chargeBatch.findMany({ where: { keyId }, orderBy: { id: 'asc' } });
    const n = await written();
    expect(n.map((x) => [x.type, x.batchId])).toEqual([['batch.dead', String(parent!.id)]]);
    expect(n[0]!.reason).toMatch(/^derived_dead: /);

    // The operator finds the derived batch's 5 uses deducted: charged (by the operator), parent partial.
    const derived = await h.db.chargeBatch.findFirstOrThrow({ where: { parentId: parent!.id } });
    const deps = { db: h.db, redis: h.redis, prefix: uniquePrefix('nt') };
    await resolveBatches(deps, [derived.id], 'charged', 'op');
    const after = await written();
    expect(after.slice(1).map((x) => [x.type, x.batchId, x.resolvedBy])).toEqual([
      ['batch.charged', String(derived.id), 'operator'],
      ['batch.partial', String(parent!.id), undefined],
    ]);
  });

  it('writes nothing while no enabled endpoint wants the type', async () => {
    await addEndpoint(h.db, 'http://127.0.0.1:9/x', ['batch.charged'], { enabled: false });
    await addEndpoint(h.db, 'http://127.0.0.1:9/y', ['batch.dead']);
    const keyId = await h.seedKey('nt-none', [1, 2]);
    expect(await h.charger().chargeKey(keyId)).toBe('charged');
    expect(await h.db.chargeBatch.count({ where: { keyId, status: 'charged' } })).toBe(1);
    expect(await written()).toEqual([]);
  });
});
