// Batching keys (src/ledger/keys.ts): upserted idempotently; what they have
// pending, and which have waited too long (the sweeper).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { formBatch } from '../../src/ledger/batches.js';
import { insertEvents } from '../../src/ledger/events.js';
import { keyHasPendingEvents, keyString, keysNeedingCharge, upsertKeys } from '../../src/ledger/keys.js';
import { createTestDatabase } from '../support/services.js';

let db: PrismaClient;
beforeAll(async () => {
  db = createPrisma(await createTestDatabase('ledger_keys'));
});
afterAll(async () => db.$disconnect());

const key = (openId: string, isTestEnv = false) => ({
  openId,
  serviceId: 's1',
  serviceModeId: 'm1',
  isTestEnv,
});
const ev = (eventId: string, keyId: number, count = 1) => ({
  eventId,
  keyId,
  count,
  occurredAt: null,
  enqueuedAt: new Date().toISOString(),
  attributes: null,
});
const form = async (keyId: number, outTradeNo: string, maxEvents = 10) =>
  (await formBatch(db, { keyId, outTradeNo, maxEvents, maxCount: 1_000, deadlineSec: 60 })).batch;

describe('keys', () => {
  it('upserts keys idempotently and returns the id of every given key', async () => {
    const ids = await upsertKeys(db, [key('u1'), key('u2'), key('u1'), key('u1', true)]);
    expect(ids.size).toBe(3);
    const again = await upsertKeys(db, [key('u2'), key('u1', true)]);
    expect(again.get(keyString(key('u2')))).toBe(ids.get(keyString(key('u2'))));
    expect(again.get(keyString(key('u1', true)))).toBe(ids.get(keyString(key('u1', true))));
    expect(ids.get(keyString(key('u1')))).not.toBe(ids.get(keyString(key('u1', true))));
    expect(await db.meterKey.count()).toBe(3);
  });

  it('says whether a key has events in no batch yet', async () => {
    const k = [...(await upsertKeys(db, [key('u3')])).values()][0]!;
    expect(await keyHasPendingEvents(db, k)).toBe(false);
    expect(await keyHasPendingEvents(db, 999_999)).toBe(false);
    await insertEvents(db, [ev('p1', k), ev('p2', k)]);
    expect(await keyHasPendingEvents(db, k)).toBe(true);
    await form(k, 'K-1', 1);
    expect(await keyHasPendingEvents(db, k)).toBe(true);
    await form(k, 'K-2', 1);
    expect(await keyHasPendingEvents(db, k)).toBe(false);
  });

  it('finds keys whose pending events or open batches have waited too long', async () => {
    const [k, other] = [...(await upsertKeys(db, [key('u5'), key('u6')])).values()];
    const needing = async (limit = 100, after = 0) =>
      (await keysNeedingCharge(db, { olderThanMs: 60_000, recentMs: 0, limit, afterKeyId: after })).keyIds;
    await insertEvents(db, [ev('s1', k!), ev('s2', other!)]);
    expect(await needing()).not.toContain(k);
    // The key's pending event arrived two minutes ago.
    await db.usageEvent.updateMany({
      where: { eventId: 's1' },
      data: { receivedAt: new Date(Date.now() - 120_000) },
    });
    expect(await needing()).toContain(k);
    expect(await needing()).not.toContain(other);
    // Batched: nothing pending, but its open batch is now the work that waits.
    const b = (await form(k!, 'K-5'))!;
    expect(await needing()).not.toContain(k);
    await db.chargeBatch.update({ where: { id: b.id }, data: { updatedAt: new Date(Date.now() - 120_000) } });
    expect(await needing()).toContain(k);
    expect(await needing()).not.toContain(other);
  });

  it('finds a key whose events just passed the age at once, wherever the walk of all keys is', async () => {
    const [k] = [...(await upsertKeys(db, [key('u-recent')])).values()];
    await insertEvents(db, [ev('r1', k!)]);
    await db.usageEvent.updateMany({
      where: { eventId: 'r1' },
      data: { receivedAt: new Date(Date.now() - 61_000) },
    });
    // The walk starts after every key id: only the recent window can find it.
    const beyond = { olderThanMs: 60_000, limit: 100, afterKeyId: 1_000_000 };
    expect((await keysNeedingCharge(db, { ...beyond, recentMs: 5_000 })).keyIds).toContain(k);
    expect((await keysNeedingCharge(db, { ...beyond, recentMs: 0 })).keyIds).not.toContain(k);
  });

  it('sweeps the keys in id order, a slice at a time', async () => {
    const ids = [
      ...(
        await upsertKeys(
          db,
          ['t1', 't2', 't3', 't4', 't5'].map((o) => key(o)),
        )
      ).values(),
    ].sort((a, b) => a - b);
    await insertEvents(
      db,
      ids.map((id, i) => ev(`t-${i}`, id)),
    );
    await db.usageEvent.updateMany({
      where: { eventId: { startsWith: 't-' } },
      data: { receivedAt: new Date(Date.now() - 120_000) },
    });
    const seen: number[] = [];
    let after = ids[0]! - 1;
    for (let turn = 0; turn < 10; turn++) {
      const r = await keysNeedingCharge(db, {
        olderThanMs: 60_000,
        recentMs: 0,
        limit: 2,
        afterKeyId: after,
      });
      seen.push(...r.keyIds.filter((id) => ids.includes(id)));
      if (r.lastKeyId === null) break;
      expect(r.lastKeyId).toBeGreaterThan(after);
      after = r.lastKeyId;
    }
    expect([...new Set(seen)].sort((a, b) => a - b)).toEqual(ids);
  });
});
