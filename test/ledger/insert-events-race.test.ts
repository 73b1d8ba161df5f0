// insertEvents racing itself on a partitioned usage_event: eventId is no longer
// unique by index (src/ledger/events.ts, insert_usage_events), so deduplication
// rests on the one-writer lock and a snapshot taken after it. Many connections
// sending overlapping events at once, including eventIds held in an older month's
// partition, must leave each eventId exactly once, with the horizon at the top.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { type EventRow, insertEvents } from '../../src/ledger/events.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { createPgLedger, type PgLedger } from '../../src/ledger/pg-ledger.js';
import { eventRow } from '../support/ledger.js';
import { createTestDatabase } from '../support/services.js';

const WRITERS = 8;
const ROUNDS = 25;
const PER_CALL = 200;

let url: string;
let db: PrismaClient;
let writers: PgLedger[];
beforeAll(async () => {
  url = await createTestDatabase('insert_race');
  db = createPrisma(url);
  writers = Array.from({ length: WRITERS }, () => createPgLedger(url, { poolSize: 1 }));
});
afterAll(async () => {
  await Promise.all(writers.map((w) => w.$disconnect()));
  await db.$disconnect();
});

describe('insertEvents under concurrency', () => {
  it('keeps each eventId once when writers race with overlapping events, old months included', async () => {
    const keys = [
      ...(
        await upsertKeys(
          db,
          ['r1', 'r2', 'r3'].map((openId) => ({
            openId,
            serviceId: 's',
            serviceModeId: 'm',
            isTestEnv: false,
          })),
        )
      ).values(),
    ];
    // 500 eventIds already in the ledger, moved to a month long past.
    const old = Array.from({ length: 500 }, (_, i) => eventRow(`old-${i}`, keys[i % 3]!, 1));
    await insertEvents(db, old);
    await db.$executeRaw`SELECT usage_event_partition_for((now() - interval '3 months')::date)`;
    await db.$executeRaw`UPDATE usage_event SET received_at = now() - interval '3 months'`;

    // Every writer sends, in every round, a window of eventIds that overlaps its
    // neighbours' windows and the old ones: each id is sent by several writers at once.
    const universe = 2_000;
    const sentIds = new Set(old.map((e) => e.eventId));
    const call = (w: number, round: number): EventRow[] =>
      Array.from({ length: PER_CALL }, (_, i) => {
        const n = (round * 37 + w * 61 + i * 7) % universe;
        const id = n < 250 ? `old-${n}` : `new-${n}`;
        sentIds.add(id);
        return eventRow(id, keys[n % 3]!, 1);
      });
    const inserted = await Promise.all(
      writers.map(async (w, wi) => {
        let mine = 0;
        for (let r = 0; r < ROUNDS; r++) mine += (await insertEvents(w, call(wi, r))).length;
        return mine;
      }),
    );

    const rows = await db.$queryRaw<{ n: number; distinct: number; max: bigint; horizon: bigint }[]>`
      SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS distinct, max(seq) AS max,
             (SELECT max_seq FROM ingest_horizon) AS horizon FROM usage_event`;
    expect(rows[0]!.n).toBe(rows[0]!.distinct);
    expect(rows[0]!.n).toBe(sentIds.size);
    // What the writers say they inserted is exactly what was new.
    expect(inserted.reduce((s, x) => s + x, 0)).toBe(sentIds.size - old.length);
    expect(rows[0]!.horizon).toBe(rows[0]!.max);
    // The old ones stayed where they were: none was written again this month.
    const recentOld = await db.$queryRaw<{ n: number }[]>`
      SELECT count(*)::int AS n FROM usage_event WHERE event_id LIKE 'old-%' AND received_at > now() - interval '1 day'`;
    expect(recentOld[0]!.n).toBe(0);
  });
});
