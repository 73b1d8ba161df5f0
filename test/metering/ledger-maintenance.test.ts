// The worker's ledger upkeep (src/metering/ledger-maintenance.ts) on real Redis and
// PostgreSQL: the coming months' partitions are made at start, and the scheduled job
// applies the retention, once per run however many workers run it.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { formBatch, settleBatch } from '../../src/ledger/batches.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { createLogger } from '../../src/logger.js';
import {
  type LedgerMaintenance,
  maintainLedger,
  startLedgerMaintenance,
} from '../../src/metering/ledger-maintenance.js';
import { addEvents, successAttempt } from '../support/ledger.js';
import { createTestDatabase, redisUrl, uniquePrefix } from '../support/services.js';

const monthStart = (monthsAgo: number) => {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - monthsAgo, 1));
};
const partitionName = (d: Date) =>
  `usage_event_${d.getUTCFullYear()}_${String(d.getUTCMonth() + 1).padStart(2, '0')}`;

let url: string;
let db: PrismaClient;
let c: pg.Client;
let redis: Redis;
beforeAll(async () => {
  url = await createTestDatabase('maintenance');
  db = createPrisma(url);
  c = new pg.Client({ connectionString: url });
  await c.connect();
  redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
});
afterAll(async () => {
  await c.end();
  await db.$disconnect();
  redis.disconnect();
});

const exists = async (table: string) =>
  (await c.query<{ r: string | null }>('SELECT to_regclass($1)::text AS r', [table])).rows[0]!.r !== null;

describe('ledger maintenance in the workers', () => {
  it('makes the months ahead at start and drops a month past the retention, once, with two workers', async () => {
    // A month ahead is missing (as after three months without a worker).
    const ahead = partitionName(monthStart(-3));
    await c.query(`DROP TABLE ${ahead}`);
    // A month five months back, its events charged.
    const [k] = [
      ...(
        await upsertKeys(db, [{ openId: 'mt', serviceId: 's', serviceModeId: 'm', isTestEnv: false }])
      ).values(),
    ];
    const old = monthStart(5);
    await c.query('SELECT usage_event_partition_for($1::date)', [old.toISOString().slice(0, 10)]);
    const ids = await addEvents(db, k!, [2, 3]);
    await c.query('UPDATE usage_event SET received_at = $2 WHERE event_id = ANY($1::text[])', [ids, old]);
    const b = (
      await formBatch(db, { keyId: k!, outTradeNo: 'MT-1', maxEvents: 10, maxCount: 100, deadlineSec: 60 })
    ).batch!;
    await settleBatch(db, successAttempt(b), b.id, { status: 'charged' });
    await c.query(`UPDATE charge_batch SET created_at = $1 WHERE id = $2`, [old, b.id]);

    const prefix = uniquePrefix('maint');
    const logger = createLogger({ level: 'silent' });
    const workers: LedgerMaintenance[] = [];
    try {
      for (const w of ['w1', 'w2'])
        workers.push(
          await startLedgerMaintenance({
            connection: () => redis,
            prefix,
            databaseUrl: url,
            retentionDays: 35,
            workerId: w,
            logger,
            everyMs: 60_000,
          }),
        );
      expect(await exists(ahead)).toBe(true);
      // The scheduler's first run comes at once; one worker takes it.
      const deadline = Date.now() + 20_000;
      while ((await exists(partitionName(old))) && Date.now() < deadline) await sleep(100);
      expect(await exists(partitionName(old))).toBe(false);
      await sleep(500);
      const audit = await c.query(`SELECT actor FROM operator_audit WHERE action = 'ledger.prune'`);
      expect(audit.rows).toHaveLength(1);
      expect(audit.rows[0].actor).toMatch(/^worker:w[12]$/);
      const daily = await c.query('SELECT events, charged FROM usage_daily WHERE key_id = $1', [k]);
      expect(daily.rows).toEqual([{ events: 2, charged: 5 }]);
    } finally {
      for (const w of workers) await w.close();
    }
  });

  it('drops no month while days are still to be rolled up (their calls would go uncounted)', async () => {
    const fresh = await createTestDatabase('maintenance_behind');
    const fc = new pg.Client({ connectionString: fresh });
    await fc.connect();
    try {
      const old = monthStart(5);
      await fc.query('SELECT usage_event_partition_for($1::date)', [old.toISOString().slice(0, 10)]);
      // A roll-up 800 days behind: more than one run's 400 days.
      await fc.query(`UPDATE ledger_retention SET rolled_through = (now() - interval '800 days')::date`);
      const r = await maintainLedger(fresh, { retentionDays: 35, actor: 'test' });
      expect(r.rollUp!.days).toHaveLength(400);
      expect(r.rollUp!.behind).toBeGreaterThan(0);
      expect(r.prune.skipped).toMatch(/days not rolled up yet/);
      expect(r.prune.months).toEqual([]);
      const still = await fc.query('SELECT to_regclass($1)::text AS r', [partitionName(old)]);
      expect(still.rows[0].r).not.toBeNull();
      // The next run catches up, then drops it.
      const next = await maintainLedger(fresh, { retentionDays: 35, actor: 'test' });
      expect(next.rollUp!.behind).toBe(0);
      expect(next.prune.months.map((m) => [m.partition, m.action])).toEqual([
        [partitionName(old), 'dropped'],
      ]);
    } finally {
      await fc.end();
    }
  });
});
