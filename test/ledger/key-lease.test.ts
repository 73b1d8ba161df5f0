// A charge run's lease on its key (src/ledger/key-lease.ts), with its fencing token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { formBatch } from '../../src/ledger/batches.js';
import { insertEvents } from '../../src/ledger/events.js';
import { holdsKeyLease, releaseKeyLease, takeKeyLease } from '../../src/ledger/key-lease.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { createTestDatabase } from '../support/services.js';

let db: PrismaClient;
beforeAll(async () => {
  db = createPrisma(await createTestDatabase('ledger_lease'));
});
afterAll(async () => db.$disconnect());

const key = (openId: string) => ({ openId, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false });
const ev = (eventId: string, keyId: number, count = 1) => ({
  eventId,
  keyId,
  count,
  occurredAt: null,
  enqueuedAt: null,
  attributes: null,
});

describe('key leases', () => {
  it('leases a key to one run at a time; a run whose token is superseded holds nothing', async () => {
    const k = [...(await upsertKeys(db, [key('u-lease')])).values()][0]!;
    const first = await takeKeyLease(db, k, 'w1', 60_000);
    if (first.kind !== 'leased') throw new Error('expected a lease');
    expect(first.pending).toBeUndefined();
    expect(first).not.toHaveProperty('batch');
    expect(await takeKeyLease(db, k, 'w2', 60_000)).toEqual({ kind: 'busy' });
    expect(await holdsKeyLease(db, first.lease)).toBe(true);
    // The lease expires (a stalled run): another run takes it with a larger token.
    await db.$executeRaw`UPDATE key_lease SET until = now() - interval '1 second' WHERE key_id = ${k}`;
    const second = await takeKeyLease(db, k, 'w2', 60_000);
    if (second.kind !== 'leased') throw new Error('expected a lease');
    expect(second.lease.token).toBe(first.lease.token + 1n);
    expect(await holdsKeyLease(db, first.lease)).toBe(false);
    await releaseKeyLease(db, first.lease); // the stale run's release changes nothing
    expect(await takeKeyLease(db, k, 'w3', 60_000)).toEqual({ kind: 'busy' });
    await releaseKeyLease(db, second.lease);
    expect((await takeKeyLease(db, k, 'w3', 60_000)).kind).toBe('leased');
  });

  it('reads, with the lease, the key’s open batch and whether events are pending', async () => {
    const k = [...(await upsertKeys(db, [key('u-work')])).values()][0]!;
    await insertEvents(db, [ev('w1', k, 3), ev('w2', k, 4)]);
    const pendingOnly = await takeKeyLease(db, k, 'w1', 60_000);
    expect(pendingOnly).toMatchObject({
      kind: 'leased',
      pending: { oldestAgeMs: expect.any(Number), newestAgeMs: expect.any(Number) },
    });
    expect(pendingOnly).not.toHaveProperty('batch');
    if (pendingOnly.kind === 'leased') await releaseKeyLease(db, pendingOnly.lease);
    const { batch: b } = await formBatch(db, {
      keyId: k,
      outTradeNo: 'L-1',
      maxEvents: 1,
      maxCount: 100,
      deadlineSec: 60,
    });
    const both = await takeKeyLease(db, k, 'w1', 60_000);
    expect(both).toMatchObject({
      kind: 'leased',
      batch: b,
      pending: { oldestAgeMs: expect.any(Number), newestAgeMs: expect.any(Number) },
    });
    if (both.kind === 'leased') await releaseKeyLease(db, both.lease);
    await formBatch(db, { keyId: k, outTradeNo: 'L-2', maxEvents: 1, maxCount: 100, deadlineSec: 60 });
    const batchOnly = await takeKeyLease(db, k, 'w1', 60_000);
    // The newest open batch.
    expect(batchOnly).toMatchObject({ kind: 'leased', batch: { outTradeNo: 'L-2', count: 4 } });
    expect(batchOnly.kind === 'leased' && batchOnly.pending).toBeUndefined();
  });
  it('forms a batch under a lease only while the run holds it', async () => {
    const k = [...(await upsertKeys(db, [key('u-fence')])).values()][0]!;
    await insertEvents(db, [ev('f1', k, 2), ev('f2', k, 3)]);
    const p = { keyId: k, outTradeNo: 'F-1', maxEvents: 1, maxCount: 100, deadlineSec: 60 };
    const stale = await takeKeyLease(db, k, 'stale', 60_000);
    if (stale.kind !== 'leased') throw new Error('expected a lease');
    await db.$executeRaw`UPDATE key_lease SET until = now() - interval '1 second' WHERE key_id = ${k}`;
    const fresh = await takeKeyLease(db, k, 'fresh', 60_000);
    if (fresh.kind !== 'leased') throw new Error('expected a lease');
    // The superseded run forms nothing and takes no event.
    expect(await formBatch(db, p, stale.lease)).toEqual({ leased: false, batch: undefined });
    expect(await db.chargeBatch.count({ where: { keyId: k } })).toBe(0);
    const formed = await formBatch(db, { ...p, outTradeNo: 'F-2' }, fresh.lease);
    expect(formed).toMatchObject({ leased: true, batch: { outTradeNo: 'F-2', count: 2, eventCount: 1 } });
    await releaseKeyLease(db, fresh.lease);
  });
});
