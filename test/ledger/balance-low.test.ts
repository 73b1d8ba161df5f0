// balance.low's statement on real PostgreSQL: a crossing is notified once per
// endpoint however many checks race, re-armed when the balance is back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { recordBalanceLevel } from '../../src/ledger/balance-low.js';
import { addEndpoint } from '../support/notify.js';
import { createTestDatabase } from '../support/services.js';

describe('recordBalanceLevel', () => {
  let db: PrismaClient;
  beforeAll(async () => {
    db = createPrisma(await createTestDatabase('balance_low'), { poolSize: 12 });
  });
  afterAll(async () => db.$disconnect());

  it('notifies a crossing once per endpoint under racing checks, and again after it re-armed', async () => {
    const at10 = await addEndpoint(db, 'http://127.0.0.1:9/a', ['balance.low']);
    const at3 = await addEndpoint(db, 'http://127.0.0.1:9/b', ['balance.low'], { threshold: 3 });
    await addEndpoint(db, 'http://127.0.0.1:9/off', ['balance.low'], { enabled: false });
    await addEndpoint(db, 'http://127.0.0.1:9/other', ['batch.dead']);
    const level = (available: number) => recordBalanceLevel(db, 7, available, { openId: 'u' });
    const notified = async () =>
      (await db.notification.findMany({ orderBy: { seq: 'asc' } })).map((n) => [
        n.endpointId,
        (n.data as { available: number }).available,
      ]);

    expect(await level(12)).toBe(0);
    const racing = await Promise.all(Array.from({ length: 12 }, () => level(5)));
    expect(racing.reduce((a, b) => a + b, 0)).toBe(1);
    expect(await notified()).toEqual([[at10, 5]]);
    expect(await level(2)).toBe(1); // below the other endpoint's threshold now
    expect(await level(1)).toBe(0);
    expect(await notified()).toEqual([
      [at10, 5],
      [at3, 2],
    ]);
    // Back at 10: both re-armed; 9 is below the first threshold only.
    expect(await level(10)).toBe(0);
    expect(await db.balanceLowState.count({ where: { keyId: 7 } })).toBe(0);
    expect(await level(9)).toBe(1);
    expect((await notified()).at(-1)).toEqual([at10, 9]);
    expect(await db.balanceLowState.findMany({ where: { keyId: 7 }, select: { endpointId: true } })).toEqual([
      { endpointId: at10 },
    ]);
    // The threshold changes (say, while a check was under way): the state of the old
    // one does not hide a crossing of the new one.
    await db.webhookEndpoint.update({ where: { id: at10 }, data: { lowBalanceThreshold: 5 } });
    expect(await level(4)).toBe(1);
    expect((await notified()).at(-1)).toEqual([at10, 4]);
    expect(await level(3)).toBe(0);
  });
});
