// What the dashboard, the CLI's status and /metrics report about the ledger
// (src/ledger/reports.ts), read from the batches and each key's pending events: it
// must say exactly what counting the events one by one says.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { createDerivedBatch, formBatch, settleBatch, settlePartialParent } from '../../src/ledger/batches.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { resolveBatchAsUncharged } from '../../src/ledger/operator-batches.js';
import { eventsByStatus, oldestPendingEventAgeSec, timeseries } from '../../src/ledger/reports.js';
import { addEvents, directEventsByStatus } from '../support/ledger.js';
import { createTestDatabase } from '../support/services.js';

let db: PrismaClient;
beforeAll(async () => {
  db = createPrisma(await createTestDatabase('ledger_reports'));
});
afterAll(async () => db.$disconnect());

const key = (openId: string) => ({ openId, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false });
let n = 0;
const form = async (keyId: number, maxEvents = 100) =>
  (await formBatch(db, { keyId, outTradeNo: `R-${++n}`, maxEvents, maxCount: 1_000, deadlineSec: 60 }))
    .batch!;

describe('reports', () => {
  it('reports no pending age and zeroes on an empty ledger', async () => {
    expect(await eventsByStatus(db)).toEqual({});
    expect(await oldestPendingEventAgeSec(db)).toBeNull();
    const points = await timeseries(db, 3);
    expect(points).toHaveLength(3);
    expect(points.every((p) => p.eventsIn === 0 && p.deductions === 0 && p.errors === 0)).toBe(true);
  });

  it('counts events by status from the batches and pending events exactly as usage_event_status does', async () => {
    const ids = await upsertKeys(db, ['a', 'b', 'c', 'd'].map(key));
    const [a, b, c, d] = [...ids.values()];
    // a: charged, overage (partial), pending.
    await addEvents(db, a!, [2, 2, 3]);
    const parent = await form(a!);
    await createDerivedBatch(db, parent, 1, 4);
    const child = await db.chargeBatch.findFirstOrThrow({ where: { parentId: parent.id } });
    await settleBatch(db, null, child.id, { status: 'charged' });
    await settlePartialParent(db, parent.id, 4);
    await addEvents(db, a!, [1, 5]);
    // b: batched, dead, insufficient, charged.
    await addEvents(db, b!, [1, 1, 4, 6, 7]);
    await settleBatch(db, null, (await form(b!, 2)).id, { status: 'dead', reason: 'test' });
    await settleBatch(db, null, (await form(b!, 1)).id, { status: 'insufficient' });
    await settleBatch(db, null, (await form(b!, 1)).id, { status: 'charged' });
    await form(b!);
    // c: a voided batch whose successor is open, and one whose successor was charged.
    await addEvents(db, c!, [3, 3, 9]);
    for (const max of [2, 1]) {
      const v = await form(c!, max);
      await settleBatch(db, null, v.id, { status: 'dead', reason: 'test' });
      await db.$transaction((tx) =>
        resolveBatchAsUncharged(tx, v.id, 'op', { outTradeNo: `R-${++n}`, deadlineSec: 60 }),
      );
    }
    const charged = await db.chargeBatch.findFirstOrThrow({
      where: { keyId: c!, status: 'open' },
      orderBy: { id: 'desc' },
    });
    await settleBatch(db, null, charged.id, { status: 'charged' });
    // d: nothing.

    const all = await eventsByStatus(db);
    expect(all).toEqual(await directEventsByStatus(db));
    expect(all).toEqual({
      pending: { events: 2, uses: 6 },
      batched: { events: 3, uses: 13 },
      charged: { events: 4, uses: 19 },
      overage: { events: 1, uses: 3 },
      dead: { events: 2, uses: 2 },
      insufficient: { events: 1, uses: 4 },
    });
    for (const some of [[a!], [b!], [c!], [d!], [a!, c!], [b!, c!, d!], []]) {
      expect(await eventsByStatus(db, some)).toEqual(await directEventsByStatus(db, some));
    }
    expect(await eventsByStatus(db, [d!])).toEqual({});
  });

  it('ages the oldest pending event from the key that has waited longest', async () => {
    const [k] = [...(await upsertKeys(db, [key('aged')])).values()];
    const [old] = await addEvents(db, k!, [1]);
    await db.usageEvent.updateMany({
      where: { eventId: old },
      data: { receivedAt: new Date(Date.now() - 90_000) },
    });
    const age = (await oldestPendingEventAgeSec(db))!;
    expect(age).toBeGreaterThanOrEqual(90);
    expect(age).toBeLessThan(120);
    await form(k!);
    expect((await oldestPendingEventAgeSec(db)) ?? 0).toBeLessThan(90);
  });

  it('counts events in per minute from the events themselves', async () => {
    const before = (await timeseries(db, 5)).reduce((sum, p) => sum + p.eventsIn, 0);
    const [k] = [...(await upsertKeys(db, [key('ts')])).values()];
    await addEvents(db, k!, [1, 1, 1]);
    const points = await timeseries(db, 5);
    expect(points.reduce((sum, p) => sum + p.eventsIn, 0)).toBe(before + 3);
    const times = points.map((p) => Date.parse(p.t));
    expect(times[4]! - times[0]!).toBe(4 * 60_000);
  });
});
