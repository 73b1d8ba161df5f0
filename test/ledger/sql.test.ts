import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { holdsKeyLease, releaseKeyLease, takeKeyLease } from '../../src/ledger/key-lease.js';
import {
  createDerivedBatch,
  eventsByStatus,
  existingEventIds,
  formBatch,
  insertEvents,
  keyHasPendingEvents,
  keyString,
  keysNeedingCharge,
  openBatchOfKey,
  recordAttempt,
  settleBatch,
  settlePartialParent,
  upsertKeys,
} from '../../src/ledger/sql.js';
import { createTestDatabase } from '../support/services.js';

let db: PrismaClient;
beforeAll(async () => {
  db = createPrisma(await createTestDatabase('ledger'));
});
afterAll(async () => db.$disconnect());

const key = (openId: string) => ({ openId, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false });
const ev = (eventId: string, keyId: number, count = 1) => ({
  eventId,
  keyId,
  count,
  occurredAt: null,
  enqueuedAt: new Date().toISOString(),
  attributes: eventId.endsWith('a') ? JSON.stringify({ plan: 'x' }) : null,
});
const attempt = (batchId: bigint, outTradeNo: string, count: number) => ({
  batchId,
  outTradeNo,
  count,
  startedAt: new Date(),
  durationMs: 12,
  httpStatus: 200,
  errorCode: 0,
  subErrorCode: null,
  description: null,
  logid: 'LOG1',
  outcome: 'success' as const,
  errorKind: null,
  workerId: 'w1',
});

describe('ledger SQL', () => {
  it('upserts keys idempotently and deduplicates events by eventId', async () => {
    const ids = await upsertKeys(db, [key('u1'), key('u2'), key('u1')]);
    const again = await upsertKeys(db, [key('u2')]);
    expect(ids.size).toBe(2);
    const k1 = [...ids.values()][0]!;
    expect([...again.values()][0]).toBe(ids.get(keyString(key('u2'))));
    const first = await insertEvents(db, [ev('e1a', k1), ev('e2', k1, 5), ev('e2', k1, 5)]);
    expect(first).toEqual([k1, k1]);
    const second = await insertEvents(db, [ev('e1a', k1), ev('e3', k1, 2)]);
    expect(second).toEqual([k1]);
    expect(await existingEventIds(db, ['e1a', 'e3', 'nope'])).toEqual(new Set(['e1a', 'e3']));
    const row = await db.usageEvent.findUnique({ where: { eventId: 'e1a' } });
    expect(row?.attributes).toEqual({ plan: 'x' });
  });

  it('forms a batch with the exact count, caps it by events and count, and settles it', async () => {
    const ids = await upsertKeys(db, [key('u3')]);
    const k = [...ids.values()][0]!;
    await insertEvents(db, [ev('b1', k, 3), ev('b2', k, 4), ev('b3', k, 10), ev('b4', k, 1)]);
    expect(await keyHasPendingEvents(db, k)).toBe(true);
    // maxCount 8 takes b1+b2 (7) and stops before b3.
    const formed = await formBatch(db, {
      keyId: k,
      outTradeNo: 'T1',
      maxEvents: 100,
      maxCount: 8,
      deadlineSec: 60,
    });
    expect(formed).toMatchObject({
      outTradeNo: 'T1',
      count: 7,
      eventCount: 2,
      openId: 'u3',
      isTestEnv: false,
    });
    const b = (await openBatchOfKey(db, k))!;
    expect(b).toEqual(formed);
    const work = await takeKeyLease(db, k, 'w1', 60_000);
    expect(work).toMatchObject({ kind: 'leased', batch: b, pending: true });
    if (work.kind === 'leased') await releaseKeyLease(db, work.lease);
    // An open batch is found again, never a second one for the same events.
    await recordAttempt(db, {
      ...attempt(b.id, 'T1', 7),
      outcome: 'error',
      errorKind: 'network',
      errorCode: null,
    });
    expect((await openBatchOfKey(db, k))!.attempts).toBe(1);
    expect(await settleBatch(db, attempt(b.id, 'T1', 7), b.id, { status: 'charged' })).toBe(true);
    expect(await settleBatch(db, attempt(b.id, 'T1', 7), b.id, { status: 'charged' })).toBe(false);
    const events = await db.usageEvent.findMany({ where: { keyId: k }, orderBy: { seq: 'asc' } });
    expect(events.map((e) => e.status)).toEqual(['charged', 'charged', 'pending', 'pending']);
    const attempts = await db.callAttempt.findMany({
      where: { batchId: b.id },
      orderBy: { attemptNo: 'asc' },
    });
    expect(attempts.map((a) => [a.attemptNo, a.outcome, a.logid])).toEqual([
      [1, 'error', 'LOG1'],
      [2, 'success', 'LOG1'],
    ]);
    // maxEvents 1 takes one event; a first event above maxCount is still taken alone.
    expect(
      await formBatch(db, { keyId: k, outTradeNo: 'T2', maxEvents: 1, maxCount: 2, deadlineSec: 60 }),
    ).toMatchObject({ count: 10, eventCount: 1 });
    expect((await openBatchOfKey(db, k))!).toMatchObject({ count: 10, eventCount: 1 });
    // b4 is still pending; with no pending event, formBatch forms nothing.
    await formBatch(db, { keyId: k, outTradeNo: 'T3', maxEvents: 10, maxCount: 10, deadlineSec: 60 });
    expect(
      await formBatch(db, { keyId: k, outTradeNo: 'T4', maxEvents: 10, maxCount: 10, deadlineSec: 60 }),
    ).toBeUndefined();
    expect(await keyHasPendingEvents(db, k)).toBe(false);
  });

  it('puts every event in exactly one batch when batches of one key are formed at once', async () => {
    const ids = await upsertKeys(db, [key('u-race')]);
    const k = [...ids.values()][0]!;
    const counts = Array.from({ length: 400 }, (_, i) => 1 + (i % 5));
    await insertEvents(
      db,
      counts.map((c, i) => ev(`race-${i}`, k, c)),
    );
    // Eight runs at once, each taking at most 60 events: their batches must not overlap.
    const formed = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        formBatch(db, { keyId: k, outTradeNo: `RACE-${i}`, maxEvents: 60, maxCount: 1_000, deadlineSec: 60 }),
      ),
    );
    const batches = formed.filter((b) => b !== undefined);
    expect(batches.length).toBeGreaterThan(0);
    for (const b of batches) {
      const members = await db.usageEvent.findMany({ where: { batchId: b.id } });
      expect(members.length).toBe(b.eventCount);
      expect(members.reduce((sum, e) => sum + e.count, 0)).toBe(b.count);
      expect(members.every((e) => e.status === 'batched')).toBe(true);
    }
    const batched = await db.usageEvent.count({ where: { keyId: k, batchId: { not: null } } });
    expect(batched).toBe(batches.reduce((sum, b) => sum + b.eventCount, 0));
  });

  it('settles a partial parent: events charged in arrival order while they fit, the rest overage', async () => {
    const ids = await upsertKeys(db, [key('u4')]);
    const k = [...ids.values()][0]!;
    await insertEvents(db, [ev('p1', k, 2), ev('p2', k, 2), ev('p3', k, 2)]);
    await formBatch(db, { keyId: k, outTradeNo: 'P', maxEvents: 100, maxCount: 100, deadlineSec: 60 });
    const parent = (await openBatchOfKey(db, k))!;
    await createDerivedBatch(db, parent, 1, 4);
    await createDerivedBatch(db, parent, 1, 4); // after a crash: found, not duplicated
    const child = (await openBatchOfKey(db, k))!;
    expect(child).toMatchObject({ outTradeNo: 'P-p1', count: 4, parentId: parent.id });
    await db.$transaction(async (tx) => {
      await settleBatch(tx, attempt(child.id, 'P-p1', 4), child.id, { status: 'charged' });
      await settlePartialParent(tx, parent.id, 4);
    });
    const p = await db.chargeBatch.findUniqueOrThrow({ where: { id: parent.id } });
    expect(p).toMatchObject({ status: 'partial', chargedCount: 4, overageCount: 2 });
    const events = await db.usageEvent.findMany({ where: { keyId: k }, orderBy: { seq: 'asc' } });
    expect(events.map((e) => e.status)).toEqual(['charged', 'charged', 'overage']);
  });

  it('leases a key to one run at a time; a run whose token is superseded holds nothing', async () => {
    const k = [...(await upsertKeys(db, [key('u-lease')])).values()][0]!;
    const first = await takeKeyLease(db, k, 'w1', 60_000);
    if (first.kind !== 'leased') throw new Error('expected a lease');
    expect(await takeKeyLease(db, k, 'w2', 60_000)).toEqual({ kind: 'busy' });
    expect(await holdsKeyLease(db, first.lease)).toBe(true);
    // The lease expires (a stalled run): another run takes it with a larger token.
    await db.$executeRaw`UPDATE meter_key SET lease_until = now() - interval '1 second' WHERE id = ${k}`;
    const second = await takeKeyLease(db, k, 'w2', 60_000);
    if (second.kind !== 'leased') throw new Error('expected a lease');
    expect(second.lease.token).toBe(first.lease.token + 1n);
    expect(await holdsKeyLease(db, first.lease)).toBe(false);
    await releaseKeyLease(db, first.lease); // the stale run's release changes nothing
    expect(await takeKeyLease(db, k, 'w3', 60_000)).toEqual({ kind: 'busy' });
    await releaseKeyLease(db, second.lease);
    expect((await takeKeyLease(db, k, 'w3', 60_000)).kind).toBe('leased');
  });

  it('finds keys whose work has waited too long', async () => {
    const ids = await upsertKeys(db, [key('u5')]);
    const k = [...ids.values()][0]!;
    await insertEvents(db, [ev('s1', k)]);
    expect(await keysNeedingCharge(db, 60_000, 100)).not.toContain(k);
    await db.$executeRaw`
      UPDATE pending_event SET received_at = now() - interval '2 minutes'
      WHERE seq = (SELECT seq FROM usage_event WHERE event_id = 's1')`;
    expect(await keysNeedingCharge(db, 60_000, 100)).toContain(k);
  });

  it('counts events by status from batches and the pending queue exactly as the event table says', async () => {
    // Earlier tests left pending, batched, charged and overage (partial) events behind.
    const direct = await db.usageEvent.groupBy({ by: ['status'], _count: { _all: true } });
    const expected = Object.fromEntries(direct.map((r) => [r.status, r._count._all]));
    expect(Object.keys(expected)).toEqual(
      expect.arrayContaining(['pending', 'batched', 'charged', 'overage']),
    );
    expect(await eventsByStatus(db)).toEqual(expected);
  });
});
