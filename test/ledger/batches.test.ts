// Charge batches (src/ledger/batches.ts): a batch takes its key's oldest pending
// events, a range of seq after the key's batched_seq and up to the ingest horizon,
// with its exact count stored before any call; settling it writes the batch alone,
// and its events' status follows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { recordAttempt } from '../../src/ledger/attempts.js';
import {
  type BatchRow,
  createDerivedBatch,
  derivedBatchCount,
  formBatch,
  openBatchById,
  openBatchOfKey,
  settleBatch,
  settlePartialParent,
} from '../../src/ledger/batches.js';
import { type EventRow, insertEvents } from '../../src/ledger/events.js';
import { releaseKeyLease, takeKeyLease } from '../../src/ledger/key-lease.js';
import { keyHasPendingEvents, upsertKeys } from '../../src/ledger/keys.js';
import { resolveBatchAsUncharged } from '../../src/ledger/operator-batches.js';
import {
  eventRow,
  keyEvents,
  keyStatuses,
  pendingOfKey,
  successAttempt,
  testKey,
  testKeyId,
} from '../support/ledger.js';
import { createTestDatabase } from '../support/services.js';

let url: string;
let db: PrismaClient;
beforeAll(async () => {
  url = await createTestDatabase('ledger_batches');
  db = createPrisma(url);
});
afterAll(async () => db.$disconnect());

const keyId = (openId: string) => testKeyId(db, openId);
const ev = eventRow;

const attempt = (batchId: bigint, outTradeNo: string, count: number) =>
  successAttempt({ id: batchId, outTradeNo, count }, { logid: 'LOG1' });
/** Forms the key's next batch, with no lease (nothing else forms this key's batches meanwhile). */
const form = async (
  db: Parameters<typeof formBatch>[0],
  keyId: number,
  outTradeNo: string,
  maxEvents = 100,
  maxCount = 1_000,
) => (await formBatch(db, { keyId, outTradeNo, maxEvents, maxCount, deadlineSec: 60 })).batch;
/** The key's batched_seq and, counted after it, its pending events and uses. */
const pending = async (id: number) => {
  const k = await db.meterKey.findUniqueOrThrow({ where: { id } });
  const p = await pendingOfKey(db, id);
  return { batchedSeq: k.batchedSeq, ...p };
};
const seqOf = async (eventId: string) => (await db.usageEvent.findFirstOrThrow({ where: { eventId } })).seq;

describe('forming and settling batches', () => {
  it('forms a batch with the exact count, caps it by events and count, and settles it', async () => {
    const k = await keyId('u3');
    await insertEvents(db, [ev('b1', k, 3), ev('b2', k, 4), ev('b3', k, 10), ev('b4', k, 1)]);
    expect(await keyHasPendingEvents(db, k)).toBe(true);
    // maxCount 8 takes b1+b2 (7) and stops before b3.
    const formed = await form(db, k, 'T1', 100, 8);
    expect(formed).toMatchObject({
      outTradeNo: 'T1',
      count: 7,
      eventCount: 2,
      parentId: null,
      attempts: 0,
      firstAttemptAt: expect.any(Date),
      openId: 'u3',
      isTestEnv: false,
    });
    expect(await db.chargeBatch.findUniqueOrThrow({ where: { id: formed!.id } })).toMatchObject({
      status: 'open',
      firstSeq: await seqOf('b1'),
      lastSeq: await seqOf('b2'),
    });
    // The rest stays pending: b3 and b4 (11 uses).
    expect(await pending(k)).toEqual({ batchedSeq: await seqOf('b2'), events: 2, uses: 11 });
    const b = (await openBatchOfKey(db, k))!;
    expect(b).toEqual(formed);
    expect(await openBatchById(db, b.id)).toEqual(formed);
    const work = await takeKeyLease(db, k, 'w1', 60_000);
    expect(work).toMatchObject({
      kind: 'leased',
      batch: b,
      pending: { oldestAgeMs: expect.any(Number), newestAgeMs: expect.any(Number) },
    });
    if (work.kind === 'leased') await releaseKeyLease(db, work.lease);
    // An open batch is found again, never a second one for the same events.
    await recordAttempt(db, {
      ...attempt(b.id, 'T1', 7),
      outcome: 'error',
      errorKind: 'network',
      errorCode: null,
    });
    expect((await openBatchOfKey(db, k))!.attempts).toBe(1);
    expect(await keyStatuses(db, k)).toEqual(['batched', 'batched', 'pending', 'pending']);
    expect(await settleBatch(db, attempt(b.id, 'T1', 7), b.id, { status: 'charged' })).toBe(true);
    expect(await settleBatch(db, attempt(b.id, 'T1', 7), b.id, { status: 'charged' })).toBe(false);
    expect(await openBatchById(db, b.id)).toBeUndefined();
    expect(await db.chargeBatch.findUniqueOrThrow({ where: { id: b.id } })).toMatchObject({
      status: 'charged',
      chargedCount: 7,
      attempts: 2,
      finishedAt: expect.any(Date),
    });
    const events = await keyEvents(db, k);
    expect(events.map((e) => [e.eventId, e.status, e.batchId])).toEqual([
      ['b1', 'charged', b.id],
      ['b2', 'charged', b.id],
      ['b3', 'pending', null],
      ['b4', 'pending', null],
    ]);
    const attempts = await db.callAttempt.findMany({
      where: { batchId: b.id },
      orderBy: { attemptNo: 'asc' },
    });
    expect(attempts.map((a) => [a.attemptNo, a.outcome, a.logid])).toEqual([
      [1, 'error', 'LOG1'],
      [2, 'success', 'LOG1'],
    ]);
    // maxEvents 1 takes one event; a first event above maxCount is still taken alone.
    expect(await form(db, k, 'T2', 1, 2)).toMatchObject({ count: 10, eventCount: 1 });
    expect((await openBatchOfKey(db, k))!).toMatchObject({ count: 10, eventCount: 1 });
    expect(await pending(k)).toEqual({ batchedSeq: await seqOf('b3'), events: 1, uses: 1 });
    // b4 is still pending.
    expect(await form(db, k, 'T3', 10, 10)).toMatchObject({ count: 1, eventCount: 1 });
    expect(await pending(k)).toEqual({ batchedSeq: await seqOf('b4'), events: 0, uses: 0 });
    // With no pending event, formBatch forms nothing.
    expect(await form(db, k, 'T4', 10, 10)).toBeUndefined();
    expect(await keyHasPendingEvents(db, k)).toBe(false);
    expect(await db.chargeBatch.count({ where: { keyId: k } })).toBe(3);
    expect(await keyStatuses(db, k)).toEqual(['charged', 'charged', 'batched', 'batched']);
  });

  it("a batch's range holds its key's events only, though other keys' events lie between them", async () => {
    const [k, other] = [await keyId('u-gaps'), await keyId('u-gaps-other')];
    await insertEvents(db, [ev('g1', k, 1), ev('o1', other, 50), ev('g2', k, 2)]);
    await insertEvents(db, [ev('g2', k, 2), ev('g1', k, 1), ev('g3', k, 3)]); // numbers of duplicates unused
    await insertEvents(db, [ev('o2', other, 60), ev('g4', k, 4)]);
    expect(await pending(k)).toMatchObject({ events: 4, uses: 10 });
    // Capped by count: g1..g3 (6 uses); then the rest.
    const first = (await form(db, k, 'G1', 100, 6))!;
    expect(first).toMatchObject({ count: 6, eventCount: 3 });
    const second = (await form(db, k, 'G2'))!;
    expect(second).toMatchObject({ count: 4, eventCount: 1 });
    const events = await keyEvents(db, k);
    expect(events.map((e) => [e.eventId, e.batchId])).toEqual([
      ['g1', first.id],
      ['g2', first.id],
      ['g3', first.id],
      ['g4', second.id],
    ]);
    expect(await db.chargeBatch.findUniqueOrThrow({ where: { id: first.id } })).toMatchObject({
      firstSeq: await seqOf('g1'),
      lastSeq: await seqOf('g3'),
    });
    // The other key's events are its own: pending, in no batch of this key.
    expect((await keyEvents(db, other)).map((e) => [e.eventId, e.status, e.batchId])).toEqual([
      ['o1', 'pending', null],
      ['o2', 'pending', null],
    ]);
    expect(await form(db, other, 'GO')).toMatchObject({ count: 110, eventCount: 2 });
  });

  it('settles dead and insufficient batches; a late success settles a dead one as charged', async () => {
    const k = await keyId('u-fates');
    await insertEvents(db, [ev('f1', k, 1), ev('f2', k, 2), ev('f3', k, 3)]);
    const dead = (await form(db, k, 'F1', 1))!;
    const short = (await form(db, k, 'F2', 1))!;
    expect(await settleBatch(db, null, dead.id, { status: 'dead', reason: 'deadline: test' })).toBe(true);
    expect(await settleBatch(db, null, short.id, { status: 'insufficient' })).toBe(true);
    expect(await keyStatuses(db, k)).toEqual(['dead', 'insufficient', 'pending']);
    expect(await db.chargeBatch.findUniqueOrThrow({ where: { id: dead.id } })).toMatchObject({
      deadReason: 'deadline: test',
      attempts: 0,
    });
    // Not from dead unless allowed.
    expect(await settleBatch(db, attempt(dead.id, 'F1', 1), dead.id, { status: 'charged' })).toBe(false);
    expect(
      await settleBatch(db, attempt(dead.id, 'F1', 1), dead.id, { status: 'charged' }, ['open', 'dead']),
    ).toBe(true);
    expect(await db.chargeBatch.findUniqueOrThrow({ where: { id: dead.id } })).toMatchObject({
      status: 'charged',
      chargedCount: 1,
      deadReason: null,
      attempts: 1,
    });
    expect(await keyStatuses(db, k)).toEqual(['charged', 'insufficient', 'pending']);
  });

  it('settles a partial parent: events charged in arrival order while they fit, the rest overage', async () => {
    const k = await keyId('u4');
    await insertEvents(db, [ev('p1', k, 2), ev('p2', k, 2), ev('p3', k, 2)]);
    await form(db, k, 'P');
    const parent = (await openBatchOfKey(db, k))!;
    expect(await derivedBatchCount(db, parent.id)).toBe(0);
    expect(await createDerivedBatch(db, parent, 1, 4)).toBe(true);
    expect(await createDerivedBatch(db, parent, 1, 4)).toBe(true); // after a crash: found, not duplicated
    expect(await derivedBatchCount(db, parent.id)).toBe(1);
    const child = (await openBatchOfKey(db, k))!;
    expect(child).toMatchObject({ outTradeNo: 'P-p1', count: 4, eventCount: 0, parentId: parent.id });
    // A derived batch holds no events: the parent's stay batched under the parent.
    expect((await keyEvents(db, k)).map((e) => [e.status, e.batchId])).toEqual([
      ['batched', parent.id],
      ['batched', parent.id],
      ['batched', parent.id],
    ]);
    await db.$transaction(async (tx) => {
      await settleBatch(tx, attempt(child.id, 'P-p1', 4), child.id, { status: 'charged' });
      expect(await settlePartialParent(tx, parent.id, 4)).toBe(true);
    });
    expect(await settlePartialParent(db, parent.id, 4)).toBe(false);
    expect(await createDerivedBatch(db, parent, 2, 1)).toBe(false); // the parent is no longer open
    const p = await db.chargeBatch.findUniqueOrThrow({ where: { id: parent.id } });
    expect(p).toMatchObject({ status: 'partial', chargedCount: 4, overageCount: 2 });
    expect((await keyEvents(db, k)).map((e) => [e.status, e.batchId])).toEqual([
      ['charged', parent.id],
      ['charged', parent.id],
      ['overage', parent.id],
    ]);
  });

  it('a partial parent charges only the events that fit whole, in order', async () => {
    const k = await keyId('u4b');
    await insertEvents(db, [ev('q1', k, 2), ev('q2', k, 3), ev('q3', k, 1)]);
    const parent = (await form(db, k, 'Q'))!;
    await settlePartialParent(db, parent.id, 4);
    // 2 fits, 2 + 3 does not: the rest is overage, though 1 more use was charged.
    expect(await keyStatuses(db, k)).toEqual(['charged', 'overage', 'overage']);
  });

  it("a voided batch's range is held by its successor, batched until that one is charged", async () => {
    const k = await keyId('u-void');
    await insertEvents(db, [ev('v1', k, 3), ev('v2', k, 4), ev('v3', k, 5)]);
    const b = (await form(db, k, 'V1', 2))!;
    await settleBatch(db, null, b.id, { status: 'dead', reason: 'idempotency_window: test' });
    await db.$transaction((tx) =>
      resolveBatchAsUncharged(tx, b.id, 'op', { outTradeNo: 'V1-again', deadlineSec: 60 }),
    );
    const successor = (await openBatchOfKey(db, k))!;
    expect(successor).toMatchObject({ outTradeNo: 'V1-again', count: 7, eventCount: 2, parentId: null });
    expect(await db.chargeBatch.findUniqueOrThrow({ where: { id: successor.id } })).toMatchObject({
      firstSeq: await seqOf('v1'),
      lastSeq: await seqOf('v2'),
      firstAttemptAt: null,
    });
    expect(await db.chargeBatch.findUniqueOrThrow({ where: { id: b.id } })).toMatchObject({
      status: 'voided',
      resolvedAs: 'uncharged',
    });
    expect((await keyEvents(db, k)).map((e) => [e.status, e.batchId])).toEqual([
      ['batched', successor.id],
      ['batched', successor.id],
      ['pending', null],
    ]);
    // The pending tail is untouched; the next batch takes it, not the voided range.
    expect(await pending(k)).toEqual({ batchedSeq: await seqOf('v2'), events: 1, uses: 5 });
    await settleBatch(db, attempt(successor.id, 'V1-again', 7), successor.id, { status: 'charged' });
    expect(await keyStatuses(db, k)).toEqual(['charged', 'charged', 'pending']);
    expect(await form(db, k, 'V2')).toMatchObject({ count: 5, eventCount: 1 });
  });
});

describe('concurrency', () => {
  it('concurrent inserts and formations never put an event in two batches, nor lose one', async () => {
    const race = createPrisma(url, { poolSize: 32 });
    try {
      // Five rounds: a late event is a matter of timing, each round gives it another chance.
      for (const round of [1, 2, 3, 4, 5]) {
        const names = ['a', 'b', 'c'].map((x) => testKey(`race${round}-${x}`));
        const keys = [...(await upsertKeys(race, names)).values()];
        const JOBS = 240;
        const PER_JOB = 6;
        // Each job holds events of every key; some repeat an event of the job before (a producer retry).
        const jobs: EventRow[][] = Array.from({ length: JOBS }, (_, j) =>
          Array.from({ length: PER_JOB }, (_, i) => {
            const n = i % 5 === 3 && j > 0 ? (j - 1) * PER_JOB + i + 1 : j * PER_JOB + i;
            return ev(`race${round}-${n}`, keys[(n * 7 + j) % 3]!, 1 + (n % 5));
          }),
        );
        // The key of a repeated event is the one of its first appearance.
        const unique = new Map<string, EventRow>();
        for (const e of jobs.flat()) if (!unique.has(e.eventId)) unique.set(e.eventId, e);
        for (const job of jobs) for (const [i, e] of job.entries()) job[i] = unique.get(e.eventId)!;

        let inserting = true;
        let insertedRows = 0;
        const queue = [...jobs];
        const inserters = Array.from({ length: 16 }, async () => {
          for (let job = queue.shift(); job; job = queue.shift()) {
            const written = await insertEvents(race, job);
            insertedRows += written.length;
          }
        });
        const formed: BatchRow[] = [];
        let formations = 0;
        // Two charge runs a key, as workers run them: each takes the key's lease, forms a
        // batch under it and settles it, while the inserts go on.
        const formers = keys.flatMap((k) =>
          [0, 1].map(async (w) => {
            while (inserting) {
              const work = await takeKeyLease(race, k, `race-${k}-${w}`, 60_000);
              if (work.kind === 'busy') {
                await new Promise((res) => setImmediate(res));
                continue;
              }
              try {
                const r = formations++;
                // Mostly capped, sometimes all the key has.
                const big = r % 5 === 0;
                const { leased, batch: b } = await formBatch(
                  race,
                  {
                    keyId: k,
                    outTradeNo: `RACE-${round}-${r}`,
                    maxEvents: big ? 10_000 : 1 + ((r * 7) % 25),
                    maxCount: big ? 1_000_000 : 5 + ((r * 13) % 60),
                    deadlineSec: 60,
                  },
                  work.lease,
                );
                expect(leased).toBe(true);
                if (!b) {
                  await new Promise((res) => setImmediate(res));
                  continue;
                }
                formed.push(b);
                if (r % 3 === 0)
                  await settleBatch(race, attempt(b.id, b.outTradeNo, b.count), b.id, { status: 'charged' });
                if (r % 3 === 1) {
                  await settleBatch(race, null, b.id, { status: 'dead', reason: 'test' });
                  await race.$transaction((tx) =>
                    resolveBatchAsUncharged(tx, b.id, 'race', {
                      outTradeNo: `RACE-${round}-${r}-again`,
                      deadlineSec: 60,
                    }),
                  );
                }
              } finally {
                await releaseKeyLease(race, work.lease);
              }
            }
          }),
        );
        await Promise.all(inserters);
        inserting = false;
        await Promise.all(formers);

        expect(insertedRows).toBe(unique.size);
        expect(formed.length).toBeGreaterThan(3);
        expect(await race.usageEvent.count({ where: { keyId: { in: keys } } })).toBe(unique.size);
        const expectedUses = [...unique.values()].reduce((sum, e) => sum + e.count, 0);
        let batchedEvents = 0;
        let batchedUses = 0;
        let pendingEvents = 0;
        let pendingUses = 0;
        for (const k of keys) {
          const meta = await race.meterKey.findUniqueOrThrow({ where: { id: k } });
          const events = await keyEvents(race, k);
          expect(events.length).toBe([...unique.values()].filter((e) => e.keyId === k).length);
          const batches = await race.chargeBatch.findMany({
            where: { keyId: k, parentId: null, status: { not: 'voided' } },
            orderBy: { firstSeq: 'asc' },
          });
          // Ranges are disjoint, in formation order, and up to the key's batched_seq.
          for (const [i, b] of batches.entries()) {
            expect(b.firstSeq).not.toBeNull();
            expect(b.lastSeq! >= b.firstSeq!).toBe(true);
            if (i > 0) expect(b.firstSeq! > batches[i - 1]!.lastSeq!).toBe(true);
            expect(b.lastSeq! <= meta.batchedSeq).toBe(true);
          }
          // An event up to batched_seq is in exactly one batch; after it, in none: pending.
          for (const e of events) {
            const holders = batches.filter((b) => b.firstSeq! <= e.seq && e.seq <= b.lastSeq!);
            if (e.seq <= meta.batchedSeq) {
              expect([e.eventId, holders.map((b) => b.id)]).toEqual([e.eventId, [e.batchId]]);
              expect(e.status).toBe(holders[0]!.status === 'open' ? 'batched' : holders[0]!.status);
            } else {
              expect([e.eventId, holders]).toEqual([e.eventId, []]);
              expect([e.status, e.batchId]).toEqual(['pending', null]);
            }
          }
          // Each batch's stored counts are exactly those of the events in its range.
          for (const b of batches) {
            const members = events.filter((e) => e.batchId === b.id);
            expect([b.id, members.length, members.reduce((sum, e) => sum + e.count, 0)]).toEqual([
              b.id,
              b.eventCount,
              b.count,
            ]);
            batchedEvents += b.eventCount;
            batchedUses += b.count;
          }
          // What the ledger says is pending is exactly the events in no batch.
          const tail = events.filter((e) => e.seq > meta.batchedSeq);
          const p = await pendingOfKey(race, k);
          expect(p).toEqual({ events: tail.length, uses: tail.reduce((sum, e) => sum + e.count, 0) });
          pendingEvents += p.events;
          pendingUses += p.uses;
          // Every voided batch has exactly one successor over the same range.
          const voided = await race.chargeBatch.findMany({ where: { keyId: k, status: 'voided' } });
          for (const v of voided) {
            expect(batches.filter((b) => b.firstSeq === v.firstSeq && b.lastSeq === v.lastSeq)).toHaveLength(
              1,
            );
          }
        }
        expect(batchedEvents + pendingEvents).toBe(unique.size);
        expect(batchedUses + pendingUses).toBe(expectedUses);
        // And what the formations returned agrees with what is stored.
        const stored = await race.chargeBatch.findMany({
          where: { outTradeNo: { startsWith: `RACE-${round}-` } },
        });
        for (const b of formed) {
          expect(stored.find((s) => s.id === b.id)).toMatchObject({
            count: b.count,
            eventCount: b.eventCount,
          });
        }
      }
    } finally {
      await race.$disconnect();
    }
  });
});
