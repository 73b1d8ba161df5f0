// The retention (src/ledger/prune.ts) on a real PostgreSQL: a month past it goes
// whole, its per-day totals stay and read the same, what the month's batches and
// attempts were goes with it; a month where something can still change stays, and
// so does every month after it; a dry run changes nothing; eventId deduplication
// lasts exactly as long as the events.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { formBatch, settleBatch } from '../../src/ledger/batches.js';
import { insertEvents } from '../../src/ledger/events.js';
import { isDataError, sqlState } from '../../src/ledger/isolate.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { resolveBatchAsCharged } from '../../src/ledger/operator-batches.js';
import { ensurePartitionsAhead, listPartitions } from '../../src/ledger/partitions.js';
import { pruneLedger } from '../../src/ledger/prune.js';
import { usageBuckets } from '../../src/ledger/reports.js';
import { addEvents, eventRow, successAttempt } from '../support/ledger.js';
import { repoRoot } from '../support/pipeline.js';
import { createTestDatabase } from '../support/services.js';

/** The first instant of the month `monthsAgo` months before this one (UTC). */
const monthStart = (monthsAgo: number) => {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - monthsAgo, 1));
};
const partitionName = (d: Date) =>
  `usage_event_${d.getUTCFullYear()}_${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
const hours = (d: Date, h: number) => new Date(d.getTime() + h * 3_600_000);

interface Ledger {
  url: string;
  db: PrismaClient;
  c: pg.Client;
  close(): Promise<void>;
}

async function ledger(label: string): Promise<Ledger> {
  const url = await createTestDatabase(label);
  const db = createPrisma(url);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return {
    url,
    db,
    c,
    async close() {
      await c.end();
      await db.$disconnect();
    },
  };
}

let n = 0;
/**
 * Events of these counts received at `at` (their month's partition made first), in a
 * batch formed an hour later and settled as `status` ('pending': no batch).
 */
async function oldBatch(
  l: Ledger,
  keyId: number,
  counts: number[],
  at: Date,
  status: 'charged' | 'open' | 'dead' | 'insufficient' | 'pending',
): Promise<{ ids: string[]; batchId?: bigint }> {
  await l.c.query('SELECT usage_event_partition_for($1::date)', [at.toISOString().slice(0, 10)]);
  const ids = await addEvents(l.db, keyId, counts, `old${++n}`);
  await l.c.query('UPDATE usage_event SET received_at = $2 WHERE event_id = ANY($1::text[])', [ids, at]);
  if (status === 'pending') return { ids };
  const b = (
    await formBatch(l.db, {
      keyId,
      outTradeNo: `P-${++n}`,
      maxEvents: 1_000,
      maxCount: 1_000_000,
      deadlineSec: 60,
    })
  ).batch!;
  if (status === 'charged') await settleBatch(l.db, successAttempt(b), b.id, { status: 'charged' });
  if (status === 'dead') await settleBatch(l.db, null, b.id, { status: 'dead', reason: 'deadline passed' });
  if (status === 'insufficient') await settleBatch(l.db, null, b.id, { status: 'insufficient' });
  await l.c.query(
    'UPDATE charge_batch SET created_at = $2, updated_at = $2, finished_at = $2 WHERE id = $1',
    [b.id, hours(at, 1)],
  );
  return { ids, batchId: b.id };
}

const key = (openId: string) => ({ openId, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false });
const sorted = <T extends { start: Date; keyId: number }>(xs: T[]) =>
  [...xs].sort((a, b) => a.start.getTime() - b.start.getTime() || a.keyId - b.keyId);
const exists = async (c: pg.Client, table: string) =>
  (await c.query<{ r: string | null }>('SELECT to_regclass($1)::text AS r', [table])).rows[0]!.r !== null;

describe('ledger prune', () => {
  let l: Ledger;
  beforeAll(async () => {
    l = await ledger('prune');
  });
  afterAll(async () => l.close());

  it('drops the months past the retention whose batches are final, and reads the same totals after', async () => {
    const [a, b] = [...(await upsertKeys(l.db, [key('pa'), key('pb')])).values()];
    const m4 = monthStart(4);
    const m3 = monthStart(3);
    await oldBatch(l, a!, [1, 2, 3], hours(m4, 5), 'charged');
    await oldBatch(l, b!, [4], hours(m4, 30), 'charged');
    await oldBatch(l, a!, [5, 5], hours(m3, 50), 'charged');
    await addEvents(l.db, a!, [7]); // this month, pending: stays
    const range = [a!, b!] as const;
    const before = await usageBuckets(l.db, [...range], monthStart(5), hours(new Date(), 24), 'day');
    expect(before.reduce((s, x) => s + x.accepted, 0)).toBe(27);
    const batchesBefore = Number((await l.c.query('SELECT count(*) FROM charge_batch')).rows[0].count);
    expect(batchesBefore).toBe(3);

    const r = await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });

    expect(r.months.map((m) => [m.partition, m.action, m.events])).toEqual([
      [partitionName(m4), 'dropped', 4],
      [partitionName(m3), 'dropped', 2],
    ]);
    expect(await exists(l.c, partitionName(m4))).toBe(false);
    expect(await exists(l.c, partitionName(m3))).toBe(false);
    expect(r.eventsSince).toEqual(monthStart(2));
    // The days read the same, now from usage_daily; this month's event from the ledger.
    const after = await usageBuckets(l.db, [...range], monthStart(5), hours(new Date(), 24), 'day');
    expect(sorted(after)).toEqual(sorted(before));
    const daily = await l.c.query(
      'SELECT key_id, day::text, events, accepted, charged FROM usage_daily ORDER BY 2, 1',
    );
    expect(daily.rows).toEqual([
      { key_id: a, day: m4.toISOString().slice(0, 10), events: 3, accepted: 6, charged: 6 },
      { key_id: b, day: hours(m4, 30).toISOString().slice(0, 10), events: 1, accepted: 4, charged: 4 },
      { key_id: a, day: hours(m3, 50).toISOString().slice(0, 10), events: 2, accepted: 10, charged: 10 },
    ]);
    // The batches that held only dropped events went with them, their attempts first.
    expect(r.batchesDeleted).toBe(3);
    expect(Number((await l.c.query('SELECT count(*) FROM charge_batch')).rows[0].count)).toBe(0);
    expect(Number((await l.c.query('SELECT count(*) FROM call_attempt')).rows[0].count)).toBe(0);
    expect(Number((await l.c.query('SELECT count(*) FROM usage_event')).rows[0].count)).toBe(1);
    const audit = await l.c.query(`SELECT actor, details FROM operator_audit WHERE action = 'ledger.prune'`);
    expect(audit.rows).toHaveLength(1);
    expect(audit.rows[0].details.dropped).toHaveLength(2);

    // A second run has nothing left to do.
    const again = await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });
    expect(again.months).toEqual([]);
    expect(again.batchesDeleted).toBe(0);
  });
});

describe('a month where something can still change', () => {
  let l: Ledger;
  beforeAll(async () => {
    l = await ledger('prune_kept');
  });
  afterAll(async () => l.close());

  it('stays while an event is pending or a batch is open or dead, and every later month with it', async () => {
    const [a, p] = [...(await upsertKeys(l.db, [key('ka'), key('kp')])).values()];
    const m4 = monthStart(4);
    const m3 = monthStart(3);
    await oldBatch(l, a!, [1], hours(m4, 1), 'charged');
    await oldBatch(l, p!, [2], hours(m4, 2), 'pending');
    await oldBatch(l, a!, [3], hours(m3, 2), 'charged'); // would go, but is after a kept month

    const pending = await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });
    expect(pending.months.map((m) => [m.partition, m.action, m.reason])).toEqual([
      [partitionName(m4), 'kept', '1 events not in a batch yet'],
      [partitionName(m3), 'kept', 'an older month is kept'],
    ]);
    expect(pending.eventsSince).toBeNull();
    expect(await exists(l.c, partitionName(m4))).toBe(true);

    // The pending event is batched (open), then the batch goes dead: still kept.
    const b = (
      await formBatch(l.db, {
        keyId: p!,
        outTradeNo: 'K-1',
        maxEvents: 1_000,
        maxCount: 1_000,
        deadlineSec: 60,
      })
    ).batch!;
    const open = await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });
    expect(open.months[0]).toMatchObject({ action: 'kept', unsettledBatches: [String(b.id)] });
    await settleBatch(l.db, null, b.id, { status: 'dead', reason: 'deadline passed' });
    const dead = await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });
    expect(dead.months[0]).toMatchObject({
      action: 'kept',
      reason: `batches open, dead or insufficient: ${b.id}`,
    });
    expect(Number((await l.c.query('SELECT count(*) FROM usage_daily')).rows[0].count)).toBe(0);

    // An operator resolves it: both months go.
    await l.db.$transaction((tx) => resolveBatchAsCharged(tx, b.id, 'op'));
    const done = await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });
    expect(done.months.map((m) => m.action)).toEqual(['dropped', 'dropped']);
  });

  it('a dry run reports what would go and changes nothing', async () => {
    // A ledger of its own: events_since only moves forward.
    const l = await ledger('prune_dry');
    onTestFinished(() => l.close());
    const [a] = [...(await upsertKeys(l.db, [key('dry')])).values()];
    const m6 = monthStart(6);
    await oldBatch(l, a!, [1, 1], hours(m6, 3), 'charged');
    const r = await pruneLedger(l.c, { retentionDays: 35, actor: 'test', dryRun: true });
    expect(r.months.map((m) => [m.partition, m.action, m.events])).toEqual([
      [partitionName(m6), 'would drop', 2],
    ]);
    expect(r.batchesDeleted).toBe(1);
    expect(await exists(l.c, partitionName(m6))).toBe(true);
    expect(
      Number((await l.c.query('SELECT count(*) FROM usage_daily WHERE key_id = $1', [a])).rows[0].count),
    ).toBe(0);
    expect(
      Number((await l.c.query('SELECT count(*) FROM charge_batch WHERE key_id = $1', [a])).rows[0].count),
    ).toBe(1);
  });

  it('refuses a retention shorter than Douyin’s idempotency window, and runs one prune at a time', async () => {
    await expect(pruneLedger(l.c, { retentionDays: 34, actor: 'test' })).rejects.toThrow(/at least 35/);
    expect(() => loadConfig([], { METER_RETENTION_DAYS: '34' })).toThrow(
      /METER_RETENTION_DAYS.*at least 35/s,
    );
    expect(loadConfig([], {}).METER_RETENTION_DAYS).toBe(400);
    const other = new pg.Client({ connectionString: l.url });
    await other.connect();
    try {
      await other.query('SELECT pg_advisory_lock(726003)');
      const r = await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });
      expect(r.skipped).toBe('another prune is running');
      expect(r.months).toEqual([]);
    } finally {
      await other.end();
    }
  });
});

describe('eventId deduplication over time', () => {
  let l: Ledger;
  beforeAll(async () => {
    l = await ledger('prune_dedup');
  });
  afterAll(async () => l.close());

  it('refuses an eventId held in an older month, and accepts it again once that month is dropped', async () => {
    const [a] = [...(await upsertKeys(l.db, [key('dd')])).values()];
    const { ids } = await oldBatch(l, a!, [1], hours(monthStart(4), 1), 'charged');
    expect(await insertEvents(l.db, [eventRow(ids[0]!, a!, 1)])).toEqual([]);
    expect(Number((await l.c.query('SELECT count(*) FROM usage_event')).rows[0].count)).toBe(1);
    await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });
    expect(await insertEvents(l.db, [eventRow(ids[0]!, a!, 1)])).toEqual([a]);
  });

  it('makes this month and the next three, once however many ask at once', async () => {
    const clients = await Promise.all(
      [1, 2, 3, 4].map(async () => {
        const c = new pg.Client({ connectionString: l.url });
        await c.connect();
        return c;
      }),
    );
    try {
      await l.c.query(`DROP TABLE ${partitionName(monthStart(-3))}`);
      await Promise.all(clients.map((c) => ensurePartitionsAhead(c)));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    const names = (await listPartitions(l.c)).map((p) => p.name);
    expect(names.slice(-4)).toEqual([0, -1, -2, -3].map((m) => partitionName(monthStart(m))));
  });
});

describe('npm run cli -- ledger', () => {
  let l: Ledger;
  beforeAll(async () => {
    l = await ledger('prune_cli');
  });
  afterAll(async () => l.close());

  const cli = async (...args: string[]) => {
    const env = { PATH: process.env.PATH, DATABASE_URL: l.url, METER_RETENTION_DAYS: '35', USER: 'bob' };
    const r = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'ledger', ...args],
      {
        cwd: repoRoot,
        env,
      },
    );
    return JSON.parse(r.stdout);
  };

  it('prune --dry-run reports, prune drops (audited as cli:<user>), partitions lists the months', async () => {
    const [a] = [...(await upsertKeys(l.db, [key('cli')])).values()];
    const m5 = monthStart(5);
    await oldBatch(l, a!, [4], hours(m5, 7), 'charged');
    const dry = await cli('prune', '--dry-run', '--json');
    expect(dry.months.map((m: { partition: string; action: string }) => [m.partition, m.action])).toEqual([
      [partitionName(m5), 'would drop'],
    ]);
    expect(await exists(l.c, partitionName(m5))).toBe(true);
    const done = await cli('prune', '--json');
    expect(done.months.map((m: { action: string }) => m.action)).toEqual(['dropped']);
    expect(done.batchesDeleted).toBe(1);
    expect(await exists(l.c, partitionName(m5))).toBe(false);
    const audit = await l.c.query(`SELECT actor FROM operator_audit WHERE action = 'ledger.prune'`);
    expect(audit.rows).toEqual([{ actor: 'cli:bob' }]);
    const parts = await cli('partitions', '--json');
    expect(parts.map((p: { name: string }) => p.name)).toEqual(
      [0, -1, -2, -3].map((m) => partitionName(monthStart(m))),
    );
  });
});

// Each on a ledger of its own: events_since only moves forward.
describe('the retention at its edges', () => {
  let l: Ledger;
  beforeEach(async () => {
    l = await ledger('prune_edge');
  });
  afterEach(async () => l.close());

  it('keeps a month holding an insufficient batch: an operator may still resolve it', async () => {
    const [a] = [...(await upsertKeys(l.db, [key('ins')])).values()];
    const m8 = monthStart(8);
    const { batchId } = await oldBatch(l, a!, [3], hours(m8, 1), 'insufficient');
    const r = await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });
    expect(r.months[0]).toMatchObject({
      partition: partitionName(m8),
      action: 'kept',
      unsettledBatches: [String(batchId)],
    });
    expect(r.batchesDeleted).toBe(0);
    await l.c.query(`UPDATE charge_batch SET status = 'charged', charged_count = count WHERE id = $1`, [
      batchId,
    ]);
    expect((await pruneLedger(l.c, { retentionDays: 35, actor: 'test' })).months[0]!.action).toBe('dropped');
  });

  it('keeps a batch while any of its events is still in the ledger, whatever its timestamps say', async () => {
    const [a] = [...(await upsertKeys(l.db, [key('span')])).values()];
    const m7 = monthStart(7);
    const m6 = monthStart(6);
    // One batch over an event of month 7 and one of month 6; month 6 holds a pending event too.
    await l.c.query('SELECT usage_event_partition_for($1::date)', [m7.toISOString().slice(0, 10)]);
    await l.c.query('SELECT usage_event_partition_for($1::date)', [m6.toISOString().slice(0, 10)]);
    const [e7, e6] = await addEvents(l.db, a!, [1, 1]);
    await l.c.query('UPDATE usage_event SET received_at = $2 WHERE event_id = $1', [e7, hours(m7, 1)]);
    await l.c.query('UPDATE usage_event SET received_at = $2 WHERE event_id = $1', [e6, hours(m6, 1)]);
    const b = (
      await formBatch(l.db, { keyId: a!, outTradeNo: 'SPAN-1', maxEvents: 10, maxCount: 10, deadlineSec: 60 })
    ).batch!;
    await settleBatch(l.db, successAttempt(b), b.id, { status: 'charged' });
    // Its timestamps say it was formed and finished in month 7, before month 6 began.
    await l.c.query('UPDATE charge_batch SET created_at = $2, finished_at = $2 WHERE id = $1', [
      b.id,
      hours(m7, 2),
    ]);
    const [k2] = [...(await upsertKeys(l.db, [key('span2')])).values()];
    await oldBatch(l, k2!, [1], hours(m6, 5), 'pending');

    const r = await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });
    expect(r.months.map((m) => [m.partition, m.action])).toEqual([
      [partitionName(m7), 'dropped'],
      [partitionName(m6), 'kept'],
    ]);
    // Month 7 is gone but month 6 still holds one of the batch's events: the batch stays.
    expect(r.batchesDeleted).toBe(0);
    const still = await l.c.query('SELECT status FROM charge_batch WHERE id = $1', [b.id]);
    expect(still.rows).toEqual([{ status: 'charged' }]);
    const status = await l.c.query('SELECT status FROM usage_event_status WHERE event_id = $1', [e6]);
    expect(status.rows).toEqual([{ status: 'charged' }]);
  });

  it('finishes a month whose totals were written by a run that stopped before the drop, without writing them again', async () => {
    const [a] = [...(await upsertKeys(l.db, [key('half')])).values()];
    const m10 = monthStart(10);
    await oldBatch(l, a!, [2], hours(m10, 1), 'charged');
    // What a run leaves when its detach timed out: the month's totals and events_since written, the month attached.
    await l.c.query(`INSERT INTO usage_daily VALUES ($1, $2, 1, 2, 2, 0, 0, 0)`, [
      a,
      m10.toISOString().slice(0, 10),
    ]);
    await l.c.query('UPDATE ledger_retention SET events_since = $1', [monthStart(9)]);
    // The batch is "final" now, but this month's totals must not be written again from a ledger
    // that changed since: make it look insufficient.
    await l.c.query(`UPDATE charge_batch SET status = 'insufficient' WHERE key_id = $1`, [a]);
    const r = await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });
    expect(r.months.find((m) => m.partition === partitionName(m10))).toMatchObject({ action: 'dropped' });
    const daily = await l.c.query('SELECT charged FROM usage_daily WHERE key_id = $1', [a]);
    expect(daily.rows).toEqual([{ charged: 2 }]);
  });

  it('refuses an event whose month has no partition as retryable, never as bad data', async () => {
    const [a] = [...(await upsertKeys(l.db, [key('nopart')])).values()];
    const current = partitionName(monthStart(0));
    await l.c.query(`ALTER TABLE usage_event DETACH PARTITION ${current}`);
    try {
      const err = await insertEvents(l.db, [eventRow('np-1', a!, 1)]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(sqlState(err)).toBe('55000');
      expect(isDataError(err)).toBe(false);
    } finally {
      await l.c.query(
        `ALTER TABLE usage_event ATTACH PARTITION ${current} FOR VALUES FROM ($1) TO ($2)`
          .replace('$1', `'${monthStart(0).toISOString()}'`)
          .replace('$2', `'${monthStart(-1).toISOString()}'`),
      );
    }
    expect(await insertEvents(l.db, [eventRow('np-1', a!, 1)])).toEqual([a]);
    // A count the table refuses is still bad data (the same SQLSTATE), for that event alone.
    const bad = await insertEvents(l.db, [eventRow('np-2', a!, 0)]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(sqlState(bad)).toBe('23514');
    expect(isDataError(bad)).toBe(true);
  });

  it('answers a day from its events and from its totals alike, whatever the hour of `from`', async () => {
    const [a] = [...(await upsertKeys(l.db, [key('days')])).values()];
    const m12 = monthStart(12);
    await oldBatch(l, a!, [1, 2], hours(m12, 3), 'charged');
    await oldBatch(l, a!, [4], hours(m12, 20), 'charged');
    const from = hours(m12, 10); // mid-day
    const to = hours(m12, 40);
    const before = await usageBuckets(l.db, [a!], from, to, 'day');
    expect(before.map((x) => x.accepted)).toEqual([7]);
    await pruneLedger(l.c, { retentionDays: 35, actor: 'test' });
    expect(await exists(l.c, partitionName(m12))).toBe(false);
    expect(await usageBuckets(l.db, [a!], from, to, 'day')).toEqual(before);
  });
});
