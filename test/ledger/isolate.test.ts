// Row isolation of the ledger's bulk insert: rows PostgreSQL refuses are found and
// returned with their reason, the others are written; a clean bulk costs one statement.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { type EventRow, insertEvents } from '../../src/ledger/events.js';
import { writeIsolating } from '../../src/ledger/isolate.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { pendingOfKey } from '../support/ledger.js';
import { createTestDatabase } from '../support/services.js';

let db: PrismaClient;
let keyId: number;
beforeAll(async () => {
  db = createPrisma(await createTestDatabase('isolate'));
  const ids = await upsertKeys(db, [
    { openId: 'u1', serviceId: 's1', serviceModeId: 'm1', isTestEnv: false },
  ]);
  keyId = [...ids.values()][0]!;
});
afterAll(async () => db.$disconnect());

const row = (eventId: string, patch: Partial<EventRow> = {}): EventRow => ({
  eventId,
  keyId,
  count: 1,
  occurredAt: null,
  enqueuedAt: new Date().toISOString(),
  attributes: null,
  ...patch,
});

/** insertEvents, counting its statements. */
function counted() {
  const calls = { n: 0 };
  const write = (part: EventRow[]) => {
    calls.n++;
    return insertEvents(db, part);
  };
  return { calls, write };
}

describe('writeIsolating(insertEvents)', () => {
  it('writes a clean bulk in one statement', async () => {
    const { calls, write } = counted();
    const rows = Array.from({ length: 500 }, (_, i) => row(`clean-${i}`));
    const r = await writeIsolating(rows, write);
    expect(r.written).toHaveLength(500);
    expect(r.refused).toEqual([]);
    expect(calls.n).toBe(1);
  });

  it('writes the good rows of a bulk and returns each refused row with its reason', async () => {
    const { calls, write } = counted();
    const rows = Array.from({ length: 200 }, (_, i) => row(`mix-${i}`, { count: 1 + (i % 3) }));
    rows[17] = row('bad-nul-attr', { attributes: JSON.stringify({ note: 'a\u0000b' }) });
    rows[88] = row('bad-surrogate', { attributes: JSON.stringify({ note: '\ud800' }) });
    rows[150] = row('bad-count', { count: 3_000_000_000 });
    const r = await writeIsolating(rows, write);
    expect(r.written).toHaveLength(197);
    expect(r.refused.map((x) => [x.item.eventId, x.reason])).toEqual([
      ['bad-nul-attr', expect.stringMatching(/^22P05 unsupported Unicode escape sequence/)],
      ['bad-surrogate', expect.stringMatching(/^22P02 invalid input syntax for type json/)],
      ['bad-count', expect.stringMatching(/^22003 .*out of range for type integer/)],
    ]);
    // Bisection: a few statements per bad row, not one per row.
    expect(calls.n).toBeLessThanOrEqual(1 + 3 * 2 * Math.ceil(Math.log2(200)));
    const stored = await db.usageEvent.count({ where: { eventId: { startsWith: 'mix-' } } });
    expect(stored).toBe(197);
    // Every written row is pending on its key, once: 500 + 197 events, 500 + (the 197 rows' counts) uses.
    const uses = rows.filter((_, i) => ![17, 88, 150].includes(i)).reduce((sum, x) => sum + x.count, 0);
    expect(await pendingOfKey(db, keyId)).toEqual({ events: 500 + 197, uses: 500 + uses });
    expect(await db.usageEvent.count()).toBe(500 + 197);
  });

  it('throws errors that are not about the data (a retry may succeed) instead of refusing rows', async () => {
    const down = Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
    await expect(writeIsolating([row('x1'), row('x2')], () => Promise.reject(down))).rejects.toBe(down);
  });
});
