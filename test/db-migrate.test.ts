import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { defaultMigrationsDir, migrate, pendingMigrations, readMigrations } from '../src/db/migrate.js';
import { createPrisma } from '../src/db/prisma.js';
import { formBatch } from '../src/ledger/batches.js';
import { eventsById, eventsInRange, insertEvents } from '../src/ledger/events.js';
import { keyHasPendingEvents } from '../src/ledger/keys.js';
import { eventsByStatus } from '../src/ledger/reports.js';
import { directEventsByStatus, eventRow, keyEvents, pendingOfKey } from './support/ledger.js';
import { createTestDatabase } from './support/services.js';

/** A database with nothing in it (not cloned from the migrated template). */
async function emptyDatabase(label: string): Promise<string> {
  const url = await createTestDatabase(label);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public');
  await c.end();
  return url;
}

describe('migrations', () => {
  it('brings an empty database to the current schema, records it like Prisma, and is idempotent', async () => {
    const url = await emptyDatabase('mig');
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    expect(await pendingMigrations(url)).toEqual((await readMigrations()).map((m) => m.name));

    const first = await migrate(url);
    expect(first.applied.length).toBeGreaterThan(0);
    const second = await migrate(url);
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied).toEqual(first.applied);
    expect(await pendingMigrations(url)).toEqual([]);

    const rows = await c.query(
      'SELECT migration_name, checksum, finished_at, applied_steps_count FROM "_prisma_migrations" ORDER BY migration_name',
    );
    const files = await readMigrations();
    expect(rows.rows.map((r) => [r.migration_name, r.checksum])).toEqual(
      files.map((m) => [m.name, m.checksum]),
    );
    expect(rows.rows.every((r) => r.finished_at && r.applied_steps_count === 1)).toBe(true);
    await c.end();

    // The generated Prisma client and the ledger's statements work against the migrated schema.
    const db = createPrisma(url);
    const key = await db.meterKey.create({
      data: { openId: 'o', serviceId: 's', serviceModeId: 'm', isTestEnv: false },
    });
    await insertEvents(db, [
      { eventId: 'e1', keyId: key.id, count: 3, occurredAt: null, enqueuedAt: null, attributes: null },
    ]);
    expect(await db.usageEvent.findFirst({ where: { eventId: 'e1' } })).toMatchObject({ count: 3 });
    expect(await eventsById(db, ['e1'])).toEqual([
      expect.objectContaining({ eventId: 'e1', count: 3, status: 'pending', batchId: null }),
    ]);
    await db.$disconnect();
  });

  it('refuses to run when an applied migration was edited', async () => {
    const url = await createTestDatabase('mig2');
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(`UPDATE "_prisma_migrations" SET checksum = 'x'`);
    await c.end();
    await expect(migrate(url)).rejects.toThrow(/changed after it was applied/);
  });
});

// The ledger as it was before the event ranges (migration 20261130120000_charge_safety
// and earlier): events with a global seq, a status and a batch_id, updated as they
// moved; pending ones also queued in pending_event; batches with the global seq
// range of their events.
const BEFORE_RANGES = '20261130120000_charge_safety';

type OldStatus = 'pending' | 'batched' | 'charged' | 'overage' | 'insufficient' | 'dead';
interface OldEvent {
  id: string;
  key: string;
  count: number;
  status: OldStatus;
  /** The batch the event is in (by name), none when pending. */
  batch?: string;
}
interface OldBatch {
  name: string;
  key: string;
  status: 'open' | 'charged' | 'partial' | 'insufficient' | 'dead' | 'voided';
  /** The events it was formed over (a voided batch's went back to pending or into a later batch). */
  formedOver: string[];
  count: number;
  parent?: string;
  chargedCount?: number;
}

// Key A: a charged batch; a batch resolved as uncharged (voided: its events went back
// to pending) of which the first event was charged again in a later batch while the
// second still waits; a partial batch (4 of 7 uses charged through its derived
// batch); a dead batch. B: charged, open (batched), insufficient, pending. C: only
// pending. E: a voided batch whose events wait to be charged again while a later
// event is already charged. D: no events. F: a voided batch's events taken again,
// with a newer one, by an open batch whose seq span holds an event charged in
// between. The keys' events are interleaved in seq.
const OLD_BATCHES: OldBatch[] = [
  { name: 'b1', key: 'A', status: 'charged', formedOver: ['A1', 'A2'], count: 5 },
  { name: 'b2', key: 'B', status: 'charged', formedOver: ['B1', 'B2'], count: 5 },
  { name: 'b3', key: 'A', status: 'voided', formedOver: ['A3', 'A4'], count: 6 },
  { name: 'b10', key: 'E', status: 'voided', formedOver: ['E1', 'E2'], count: 3 },
  { name: 'b4', key: 'A', status: 'partial', formedOver: ['A5', 'A6', 'A7'], count: 7, chargedCount: 4 },
  { name: 'b5', key: 'A', status: 'charged', formedOver: [], count: 4, parent: 'b4' },
  { name: 'b6', key: 'B', status: 'open', formedOver: ['B3', 'B4'], count: 2 },
  { name: 'b11', key: 'E', status: 'charged', formedOver: ['E3'], count: 3 },
  { name: 'b7', key: 'A', status: 'dead', formedOver: ['A8'], count: 6 },
  { name: 'b8', key: 'B', status: 'insufficient', formedOver: ['B5'], count: 7 },
  { name: 'b9', key: 'A', status: 'charged', formedOver: ['A3'], count: 5 },
  { name: 'b12', key: 'F', status: 'voided', formedOver: ['F1', 'F2'], count: 3 },
  { name: 'b13', key: 'F', status: 'charged', formedOver: ['F3'], count: 4 },
  { name: 'b14', key: 'F', status: 'open', formedOver: ['F1', 'F2', 'F4'], count: 8 },
];
// In seq order.
const OLD_EVENTS: OldEvent[] = [
  { id: 'A1', key: 'A', count: 2, status: 'charged', batch: 'b1' },
  { id: 'F1', key: 'F', count: 1, status: 'batched', batch: 'b14' },
  { id: 'F2', key: 'F', count: 2, status: 'batched', batch: 'b14' },
  { id: 'B1', key: 'B', count: 1, status: 'charged', batch: 'b2' },
  { id: 'A2', key: 'A', count: 3, status: 'charged', batch: 'b1' },
  { id: 'B2', key: 'B', count: 4, status: 'charged', batch: 'b2' },
  { id: 'C1', key: 'C', count: 4, status: 'pending' },
  { id: 'A3', key: 'A', count: 5, status: 'charged', batch: 'b9' },
  { id: 'E1', key: 'E', count: 1, status: 'pending' },
  { id: 'A4', key: 'A', count: 1, status: 'pending' },
  { id: 'E2', key: 'E', count: 2, status: 'pending' },
  { id: 'A5', key: 'A', count: 2, status: 'charged', batch: 'b4' },
  { id: 'B3', key: 'B', count: 1, status: 'batched', batch: 'b6' },
  { id: 'A6', key: 'A', count: 2, status: 'charged', batch: 'b4' },
  { id: 'B4', key: 'B', count: 1, status: 'batched', batch: 'b6' },
  { id: 'E3', key: 'E', count: 3, status: 'charged', batch: 'b11' },
  { id: 'F3', key: 'F', count: 4, status: 'charged', batch: 'b13' },
  { id: 'A7', key: 'A', count: 3, status: 'overage', batch: 'b4' },
  { id: 'A8', key: 'A', count: 6, status: 'dead', batch: 'b7' },
  { id: 'B5', key: 'B', count: 7, status: 'insufficient', batch: 'b8' },
  { id: 'C2', key: 'C', count: 5, status: 'pending' },
  { id: 'A9', key: 'A', count: 2, status: 'pending' },
  { id: 'B6', key: 'B', count: 3, status: 'pending' },
  { id: 'F4', key: 'F', count: 5, status: 'batched', batch: 'b14' },
];

/** Writes OLD_BATCHES and OLD_EVENTS in the old shape; returns the key and batch ids. */
async function fillOldLedger(c: pg.Client) {
  const keyIds = new Map<string, number>();
  for (const k of ['A', 'B', 'C', 'D', 'E', 'F']) {
    const r = await c.query<{ id: number }>(
      `INSERT INTO meter_key (open_id, service_id, service_mode_id, is_test_env) VALUES ($1, 's1', 'm1', false)
       RETURNING id`,
      [`old-${k}`],
    );
    keyIds.set(k, r.rows[0]!.id);
  }
  // A run held key A's lease when the service stopped.
  await c.query(
    `UPDATE meter_key SET lease_token = 7, lease_owner = 'w-old', lease_until = now() + interval '1 minute'
     WHERE id = $1`,
    [keyIds.get('A')],
  );
  const batchIds = new Map<string, bigint>();
  for (const b of OLD_BATCHES) {
    const r = await c.query<{ id: string }>(
      `INSERT INTO charge_batch (key_id, out_trade_no, count, event_count, status, parent_id, charged_count,
                                 overage_count, deadline_at, finished_at, first_attempt_at, resolved_as)
       VALUES ($1, $2, $3, $4, $5::batch_status, $6, $7, $8, now() + interval '1 hour',
               CASE WHEN $5 = 'open' THEN NULL ELSE now() END, now(),
               CASE WHEN $5 = 'voided' THEN 'uncharged' END)
       RETURNING id`,
      [
        keyIds.get(b.key),
        `old-${b.name}`,
        b.count,
        b.formedOver.length,
        b.status,
        b.parent ? batchIds.get(b.parent) : null,
        b.chargedCount ?? (b.status === 'charged' ? b.count : 0),
        b.status === 'partial' ? b.count - b.chargedCount! : 0,
      ],
    );
    batchIds.set(b.name, BigInt(r.rows[0]!.id));
  }
  const seqs = new Map<string, string>();
  for (const [i, e] of OLD_EVENTS.entries()) {
    const r = await c.query<{ seq: string }>(
      `INSERT INTO usage_event (event_id, key_id, count, received_at, status, batch_id)
       VALUES ($1, $2, $3, now() - make_interval(mins => $4), $5::event_status, $6) RETURNING seq`,
      [
        `old-${e.id}`,
        keyIds.get(e.key),
        e.count,
        OLD_EVENTS.length - i,
        e.status,
        e.batch ? batchIds.get(e.batch) : null,
      ],
    );
    seqs.set(e.id, r.rows[0]!.seq);
    if (e.status === 'pending') {
      await c.query(
        `INSERT INTO pending_event (seq, key_id, count, received_at)
         SELECT seq, key_id, count, received_at FROM usage_event WHERE seq = $1`,
        [r.rows[0]!.seq],
      );
    }
  }
  // Each batch records the seq range of the events it was formed over.
  for (const b of OLD_BATCHES.filter((x) => x.formedOver.length > 0)) {
    const s = b.formedOver.map((id) => Number(seqs.get(id)));
    const [lo, hi] = [Math.min(...s), Math.max(...s)];
    await c.query('UPDATE charge_batch SET first_seq = $2, last_seq = $3 WHERE id = $1', [
      batchIds.get(b.name),
      lo,
      hi,
    ]);
  }
  return { keyIds, batchIds };
}

describe('migrating a ledger of the old shape to event ranges', () => {
  it('keeps every event, each batch over exactly its events, every status, and the pending events as what is batched next', async () => {
    const url = await emptyDatabase('mig_ranges');
    // Migrated up to and including BEFORE_RANGES, with the runner itself, from a copy
    // of the migrations folder without the later ones.
    const all = await readMigrations();
    const later = all.filter((m) => m.name > BEFORE_RANGES).map((m) => m.name);
    expect(later.length).toBeGreaterThan(0);
    const dir = await mkdtemp(join(tmpdir(), 'um-migrations-'));
    try {
      for (const name of await readdir(defaultMigrationsDir)) {
        if (!later.includes(name))
          await cp(join(defaultMigrationsDir, name), join(dir, name), { recursive: true });
      }
      const before = await migrate(url, dir);
      expect(before.applied.at(-1)).toBe(BEFORE_RANGES);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const { keyIds, batchIds } = await fillOldLedger(c);
    const after = await migrate(url);
    expect(after.applied).toEqual(later);
    expect((await c.query(`SELECT to_regclass('pending_event') AS t`)).rows[0].t).toBeNull();
    await c.end();

    const db = createPrisma(url);
    try {
      const keyOf = (k: string) => keyIds.get(k)!;
      const batchOf = (b: string) => batchIds.get(b)!;
      // No event lost, none made up, none changed.
      const byId = (a: unknown[], b: unknown[]) => String(a[0]).localeCompare(String(b[0]));
      const rows = await db.usageEvent.findMany();
      expect(rows.map((r) => [r.eventId, r.keyId, r.count]).sort(byId)).toEqual(
        OLD_EVENTS.map((e) => [`old-${e.id}`, keyOf(e.key), e.count]).sort(byId),
      );
      // (The checks below are soft: a failure lists every divergence, not the first.)

      // Every event has its old status, in the batch it was in.
      const now = await eventsById(
        db,
        OLD_EVENTS.map((e) => `old-${e.id}`),
      );
      expect
        .soft(now.map((e) => [e.eventId, e.status, e.batchId]).sort(byId))
        .toEqual(
          OLD_EVENTS.map((e) => [`old-${e.id}`, e.status, e.batch ? batchOf(e.batch) : null]).sort(byId),
        );

      // Each batch's range holds exactly its old events, in their old order, with its count.
      for (const b of OLD_BATCHES) {
        const members = OLD_EVENTS.filter((e) => e.batch === b.name);
        const row = await db.chargeBatch.findUniqueOrThrow({ where: { id: batchOf(b.name) } });
        if (members.length === 0) {
          // A voided or derived batch holds no event.
          expect.soft(now.filter((e) => e.batchId === row.id)).toEqual([]);
          continue;
        }
        expect.soft([b.name, row.firstSeq !== null, row.lastSeq !== null]).toEqual([b.name, true, true]);
        const inRange = await eventsInRange(db, row.keyId, row.firstSeq!, row.lastSeq!, 1_000);
        expect
          .soft([b.name, inRange.map((e) => e.eventId)])
          .toEqual([b.name, members.map((e) => `old-${e.id}`)]);
        expect
          .soft([b.name, row.eventCount, inRange.reduce((sum, e) => sum + e.count, 0)])
          .toEqual([b.name, members.length, row.count]);
      }

      // Reports agree with the events one by one, and with the old statuses.
      const old: Record<string, { events: number; uses: number }> = {};
      for (const e of OLD_EVENTS) {
        old[e.status] ??= { events: 0, uses: 0 };
        old[e.status]!.events += 1;
        old[e.status]!.uses += e.count;
      }
      expect.soft(await directEventsByStatus(db)).toEqual(old);
      expect.soft(await eventsByStatus(db)).toEqual(old);

      // A run's lease is carried over.
      expect.soft(await db.keyLease.findUnique({ where: { keyId: keyOf('A') } })).toMatchObject({
        token: 7n,
        owner: 'w-old',
      });

      // Each key's pending events are its tail, the key says exactly those are pending,
      // and the next batch formed takes exactly them (no event is batched twice).
      for (const k of ['A', 'B', 'C', 'D', 'E', 'F']) {
        const pendingIds = OLD_EVENTS.filter((e) => e.key === k && e.status === 'pending').map(
          (e) => `old-${e.id}`,
        );
        const pendingUses = OLD_EVENTS.filter((e) => e.key === k && e.status === 'pending').reduce(
          (sum, e) => sum + e.count,
          0,
        );
        const order = (await keyEvents(db, keyOf(k))).map((e) => e.eventId);
        expect.soft([k, order.slice(order.length - pendingIds.length)]).toEqual([k, pendingIds]);
        expect
          .soft([k, await pendingOfKey(db, keyOf(k))])
          .toEqual([k, { events: pendingIds.length, uses: pendingUses }]);
        expect.soft([k, await keyHasPendingEvents(db, keyOf(k))]).toEqual([k, pendingIds.length > 0]);
      }
      for (const k of ['A', 'B', 'C', 'D', 'E', 'F']) {
        const pendingIds = OLD_EVENTS.filter((e) => e.key === k && e.status === 'pending').map(
          (e) => `old-${e.id}`,
        );
        const { batch: next } = await formBatch(db, {
          keyId: keyOf(k),
          outTradeNo: `new-${k}`,
          maxEvents: 1_000,
          maxCount: 1_000_000,
          deadlineSec: 60,
        });
        if (pendingIds.length === 0) {
          expect.soft([k, next]).toEqual([k, undefined]);
          continue;
        }
        const batched = (await eventsById(db, pendingIds)).filter((e) => e.batchId === next?.id);
        expect.soft([k, batched.length, next?.eventCount]).toEqual([k, pendingIds.length, pendingIds.length]);
        if (!next) continue;
        const row = await db.chargeBatch.findUniqueOrThrow({ where: { id: next.id } });
        const inRange = await eventsInRange(db, row.keyId, row.firstSeq!, row.lastSeq!, 1_000);
        expect.soft([k, inRange.map((e) => e.eventId).sort()]).toEqual([k, [...pendingIds].sort()]);
      }
      // Everything is batched now, once; the old charged events are still charged.
      const formed = await eventsByStatus(db);
      expect.soft(formed).toEqual(await directEventsByStatus(db));
      expect.soft(formed.pending).toBeUndefined();
      expect.soft(formed.charged).toEqual(old.charged);

      // New events after the migration are numbered after the old ones and batched on their own.
      await insertEvents(db, [
        {
          eventId: 'new-A1',
          keyId: keyOf('A'),
          count: 9,
          occurredAt: null,
          enqueuedAt: null,
          attributes: null,
        },
      ]);
      const { batch: fresh } = await formBatch(db, {
        keyId: keyOf('A'),
        outTradeNo: 'new-A-2',
        maxEvents: 1_000,
        maxCount: 1_000_000,
        deadlineSec: 60,
      });
      expect.soft(fresh).toMatchObject({ count: 9, eventCount: 1 });
      expect
        .soft((await keyEvents(db, keyOf('A'))).at(-1))
        .toMatchObject({ eventId: 'new-A1', batchId: fresh?.id });
    } finally {
      await db.$disconnect();
    }
  });
});

const BEFORE_PARTITIONS = '20261130230000_search_indexes';

/** Migrates `url` with the runner up to and including `last`, from a copy of the migrations. */
async function migrateThrough(url: string, last: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'um-migrations-'));
  try {
    for (const name of await readdir(defaultMigrationsDir)) {
      if (name <= last || !name.match(/^\d/))
        await cp(join(defaultMigrationsDir, name), join(dir, name), { recursive: true });
    }
    const r = await migrate(url, dir);
    expect(r.applied.at(-1)).toBe(last);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('migrating a ledger into monthly partitions', () => {
  it('moves every event into the partition of its month, unchanged, with statuses, seq and dedup intact', async () => {
    const url = await emptyDatabase('mig_parts');
    await migrateThrough(url, BEFORE_PARTITIONS);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      // Two keys; events received two months ago, last month and now; two batches settled.
      await c.query(`INSERT INTO meter_key (open_id, service_id, service_mode_id, is_test_env)
                     VALUES ('u1', 's', 'm', false), ('u2', 's', 'm', true)`);
      const months = [2, 1, 0];
      for (const [i, ago] of months.entries()) {
        await c.query(
          `INSERT INTO usage_event (event_id, key_id, count, occurred_at, enqueued_at, received_at, attributes)
           SELECT 'p' || $1 || '-' || g, 1 + g % 2, 1 + g % 3, now() - make_interval(days => 1), now(),
                  date_trunc('month', now()) - make_interval(months => $2) + make_interval(hours => g),
                  CASE WHEN g % 2 = 0 THEN jsonb_build_object('g', g) END
           FROM generate_series(1, 40) g`,
          [i, ago],
        );
      }
      await c.query(`UPDATE ingest_horizon SET max_seq = (SELECT max(seq) FROM usage_event)`);
      // Key 1's first 10 events charged, the next 5 in an open batch; the rest pending.
      const k1 = (await c.query(`SELECT seq FROM usage_event WHERE key_id = 1 ORDER BY seq`)).rows.map(
        (r) => r.seq,
      );
      await c.query(
        `INSERT INTO charge_batch (key_id, out_trade_no, count, event_count, status, deadline_at, first_seq, last_seq)
         VALUES (1, 'MIG-1', 10, 10, 'charged', now(), $1, $2), (1, 'MIG-2', 5, 5, 'open', now() + interval '1 day', $3, $4)`,
        [k1[0], k1[9], k1[10], k1[14]],
      );
      await c.query('UPDATE meter_key SET batched_seq = $1 WHERE id = 1', [k1[14]]);
      const snapshot = `SELECT seq::text, event_id, key_id, count, occurred_at, enqueued_at, received_at, attributes, status,
                               batch_id::text FROM usage_event_status ORDER BY seq`;
      const before = (await c.query(snapshot)).rows;
      expect(before).toHaveLength(120);
      expect(new Set(before.map((r) => r.status))).toEqual(new Set(['charged', 'batched', 'pending']));

      const r = await migrate(url);
      expect(r.applied).toEqual(['20261201000000_partitioned_ledger']);

      expect((await c.query(snapshot)).rows).toEqual(before);
      // Each row in its month's partition.
      const placed = await c.query(
        `SELECT tableoid::regclass::text AS part, to_char(received_at AT TIME ZONE 'UTC', 'YYYY_MM') AS month, count(*)::int AS n
         FROM usage_event GROUP BY 1, 2 ORDER BY 2`,
      );
      expect(placed.rows).toHaveLength(3);
      for (const p of placed.rows) expect(p.part).toBe(`usage_event_${p.month}`);
      expect(
        (await c.query(`SELECT relkind FROM pg_class WHERE relname = 'usage_event'`)).rows[0].relkind,
      ).toBe('p');
      expect((await c.query(`SELECT to_regclass('usage_event_unpartitioned') AS t`)).rows[0].t).toBeNull();
      // The sequence goes on above every old seq, and an old eventId is still a duplicate.
      const db = createPrisma(url);
      try {
        const maxSeq = BigInt(before.at(-1)!.seq);
        expect(await insertEvents(db, [eventRow('p0-1', 1), eventRow('after-1', 2)])).toEqual([2]);
        const fresh = await db.usageEvent.findFirstOrThrow({ where: { eventId: 'after-1' } });
        expect(fresh.seq > maxSeq).toBe(true);
        expect(await db.usageEvent.count()).toBe(121);
      } finally {
        await db.$disconnect();
      }
    } finally {
      await c.end();
    }
  });
});
