// Usage events (src/ledger/events.ts): written once by one writer at a time,
// deduplicated by eventId, each committed write moving the ingest horizon up to
// its highest seq; their status is derived (usage_event_status).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { formBatch } from '../../src/ledger/batches.js';
import {
  eventsById,
  eventsInRange,
  eventsOfKey,
  existingEventIds,
  insertEvents,
} from '../../src/ledger/events.js';
import { eventRow, pendingOfKey, testKeyId } from '../support/ledger.js';
import { createTestDatabase } from '../support/services.js';

let url: string;
let db: PrismaClient;
beforeAll(async () => {
  url = await createTestDatabase('ledger_events');
  db = createPrisma(url);
});
afterAll(async () => db.$disconnect());

const keyId = (openId: string) => testKeyId(db, openId);
const ev = (eventId: string, keyId: number, count = 1) =>
  eventRow(eventId, keyId, count, eventId.endsWith('a') ? JSON.stringify({ plan: 'x' }) : null);

const horizon = async () => (await db.ingestHorizon.findUniqueOrThrow({ where: { id: 1 } })).maxSeq;
const seqs = async (k: number) =>
  (await db.usageEvent.findMany({ where: { keyId: k }, orderBy: { seq: 'asc' } })).map((e) => [
    e.eventId,
    e.seq,
  ]);

describe('insertEvents', () => {
  it('deduplicates by eventId, within a call and across calls, and counts only what it inserted', async () => {
    const k1 = await keyId('u1');
    const first = await insertEvents(db, [ev('e1a', k1), ev('e2', k1, 5), ev('e2', k1, 5)]);
    expect(first).toEqual([k1, k1]);
    const second = await insertEvents(db, [ev('e1a', k1), ev('e3', k1, 2)]);
    expect(second).toEqual([k1]);
    expect(await insertEvents(db, [ev('e3', k1, 2)])).toEqual([]);
    expect(await insertEvents(db, [])).toEqual([]);
    expect(await existingEventIds(db, ['e1a', 'e3', 'nope'])).toEqual(new Set(['e1a', 'e3']));
    expect(await existingEventIds(db, [])).toEqual(new Set());
    const row = await db.usageEvent.findFirst({ where: { eventId: 'e1a' } });
    expect(row?.attributes).toEqual({ plan: 'x' });
    expect(await db.usageEvent.count({ where: { keyId: k1 } })).toBe(3);
    // Exactly the inserted events are pending: 3 events, 1 + 5 + 2 uses.
    expect(await pendingOfKey(db, k1)).toEqual({ events: 3, uses: 8 });
  });

  it('numbers events in the order given, and moves the horizon up to the highest seq it committed', async () => {
    const [a, b] = [await keyId('seq-a'), await keyId('seq-b')];
    await insertEvents(db, [ev('sa1', a, 1), ev('sb1', b, 2), ev('sa2', a, 3), ev('sb2', b, 4)]);
    const [sa1, sa2] = (await seqs(a)).map(([, seq]) => seq as bigint);
    const [sb1, sb2] = (await seqs(b)).map(([, seq]) => seq as bigint);
    expect([sb1! - sa1!, sa2! - sa1!, sb2! - sa1!]).toEqual([1n, 2n, 3n]);
    expect(await horizon()).toBe(sb2);
    // A call of duplicates only commits no event and leaves the horizon where it was.
    await insertEvents(db, [ev('sa2', a, 3)]);
    expect(await horizon()).toBe(sb2);
    await insertEvents(db, [ev('sa2', a, 3), ev('sa3', a, 5)]);
    const sa3 = (await db.usageEvent.findFirstOrThrow({ where: { eventId: 'sa3' } })).seq;
    expect(sa3 > sb2!).toBe(true);
    expect(await horizon()).toBe(sa3);
    expect(await pendingOfKey(db, a)).toEqual({ events: 3, uses: 9 });
    expect(await pendingOfKey(db, b)).toEqual({ events: 2, uses: 6 });
  });

  it('puts the horizon row back if it ever goes missing, never below what was written', async () => {
    const k = await keyId('seq-lost');
    await db.$executeRaw`DELETE FROM ingest_horizon`;
    await insertEvents(db, [ev('lost-1', k, 1)]);
    const seq = (await db.usageEvent.findFirstOrThrow({ where: { eventId: 'lost-1' } })).seq;
    expect(await horizon()).toBe(seq);
  });

  it('writes one call at a time: each call is a run of seq of its own, and the horizon is the highest', async () => {
    const race = createPrisma(url, { poolSize: 12 });
    try {
      const keys = [await keyId('w-a'), await keyId('w-b')];
      const calls = Array.from({ length: 24 }, (_, c) =>
        Array.from({ length: 20 }, (_, i) => ev(`w-${c}-${i}`, keys[(c + i) % 2]!, 1 + (i % 3))),
      );
      await Promise.all(calls.map((rows) => insertEvents(race, rows)));
      const rows = await db.usageEvent.findMany({ where: { keyId: { in: keys } }, orderBy: { seq: 'asc' } });
      expect(rows).toHaveLength(24 * 20);
      for (const [c, call] of calls.entries()) {
        const mine = rows.filter((r) => r.eventId.startsWith(`w-${c}-`));
        // In the order given, and no other call's event in between.
        expect(mine.map((r) => r.eventId)).toEqual(call.map((e) => e.eventId));
        expect(mine.at(-1)!.seq - mine[0]!.seq).toBe(BigInt(call.length - 1));
      }
      expect(await horizon()).toBe(rows.at(-1)!.seq);
    } finally {
      await race.$disconnect();
    }
  });
});

describe('events with their status', () => {
  it('eventsById, eventsInRange and eventsOfKey give status and batch, derived from the batch holding each', async () => {
    const k = await keyId('reads');
    await insertEvents(db, [ev('r1', k, 1), ev('r2', k, 2), ev('r3', k, 3), ev('r4', k, 4)]);
    const b = (
      await formBatch(db, {
        keyId: k,
        outTradeNo: 'READS-1',
        maxEvents: 2,
        maxCount: 100,
        deadlineSec: 60,
      })
    ).batch!;
    const [r1, r2, r3, r4] = (await seqs(k)).map(([, seq]) => seq as bigint);
    const byId = await eventsById(db, ['r1', 'r3', 'nope']);
    expect(byId.map((e) => [e.eventId, e.seq, e.status, e.batchId]).sort()).toEqual([
      ['r1', r1, 'batched', b.id],
      ['r3', r3, 'pending', null],
    ]);
    expect(byId.find((e) => e.eventId === 'r1')).toMatchObject({
      keyId: k,
      count: 1,
      occurredAt: null,
      enqueuedAt: expect.any(Date),
      receivedAt: expect.any(Date),
    });
    const range = await eventsInRange(db, k, r2!, r4!, 2);
    expect(range.map((e) => [e.eventId, e.status])).toEqual([
      ['r2', 'batched'],
      ['r3', 'pending'],
    ]);
    const newest = await eventsOfKey(db, k, { limit: 3 });
    expect(newest.map((e) => e.eventId)).toEqual(['r4', 'r3', 'r2']);
    expect((await eventsOfKey(db, k, { beforeSeq: r3, limit: 10 })).map((e) => e.eventId)).toEqual([
      'r2',
      'r1',
    ]);
    expect((await eventsOfKey(db, k, { status: 'pending', limit: 10 })).map((e) => e.eventId)).toEqual([
      'r4',
      'r3',
    ]);
    expect(
      (await eventsOfKey(db, k, { status: 'batched', beforeSeq: r2, limit: 10 })).map((e) => e.eventId),
    ).toEqual(['r1']);
  });
});
