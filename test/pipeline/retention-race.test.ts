// The retention racing live charging of the same keys: while two workers ingest and
// charge new events, the prune runs again and again, dropping an old month of those
// very keys and deleting its settled batches. Nothing it does may reach the new
// events: every key is deducted exactly its new uses, once, and the ledger agrees
// with Douyin batch by batch (the old batches, never sent to this simulator, must
// be gone for that to hold).
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formBatch, settleBatch } from '../../src/ledger/batches.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { pruneLedger } from '../../src/ledger/prune.js';
import { addEvents, successAttempt } from '../support/ledger.js';
import { fundUsers, makeEvents, type Pipeline, startPipeline } from '../support/pipeline.js';

const users = Array.from({ length: 10 }, (_, i) => `ret${i}`);
const old = (() => {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 4, 1, 6));
})();
const oldPartition = `usage_event_${old.getUTCFullYear()}_${String(old.getUTCMonth() + 1).padStart(2, '0')}`;

describe('the retention while charging goes on', () => {
  let p: Pipeline;
  let c: pg.Client;
  beforeAll(async () => {
    p = await startPipeline({ label: 'retention_race', faults: { latencyMs: 5 } });
    fundUsers(p.sim, users);
    c = new pg.Client({ connectionString: p.env.DATABASE_URL });
    await c.connect();
  }, 60_000);
  afterAll(async () => {
    await c?.end();
    await p?.close();
  });

  it('drops an old month of the same keys and deletes its batches; every key is still charged exactly its new uses', async () => {
    // Each user's key has an old month: events in a charged batch, formed and finished then.
    const keys = await upsertKeys(
      p.db,
      users.map((openId) => ({ openId, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false })),
    );
    await c.query('SELECT usage_event_partition_for($1::date)', [old.toISOString().slice(0, 10)]);
    let n = 0;
    for (const keyId of keys.values()) {
      const ids = await addEvents(p.db, keyId, [2, 3], 'ret-old');
      await c.query('UPDATE usage_event SET received_at = $2 WHERE event_id = ANY($1::text[])', [ids, old]);
      const b = (
        await formBatch(p.db, {
          keyId,
          outTradeNo: `RET-OLD-${++n}`,
          maxEvents: 10,
          maxCount: 100,
          deadlineSec: 60,
        })
      ).batch!;
      await settleBatch(p.db, successAttempt(b), b.id, { status: 'charged' });
      await c.query(
        'UPDATE charge_batch SET created_at = $2, updated_at = $2, finished_at = $2 WHERE id = $1',
        [b.id, old],
      );
    }

    await p.startWorker();
    await p.startWorker();
    // Charging under way for every key first (batches of the new events open and out)...
    await p.send(makeEvents(60, users, 'ret-new-a'));
    const deadline = Date.now() + 20_000;
    while (
      (await p.db.chargeBatch.count({ where: { outTradeNo: { not: { startsWith: 'RET-OLD' } } } })) <
      users.length
    ) {
      if (Date.now() > deadline) throw new Error('no charging started');
      await sleep(20);
    }
    // ...then the prune, over and over, on a connection of its own, while more arrive.
    let sending = true;
    const reports: Awaited<ReturnType<typeof pruneLedger>>[] = [];
    const pruning = (async () => {
      while (sending) {
        reports.push(await pruneLedger(c, { retentionDays: 35, actor: 'test' }));
        await sleep(20);
      }
    })();
    for (let wave = 0; wave < 5; wave++) {
      await p.send(makeEvents(60, users, `ret-new-${wave}`));
      await sleep(150);
    }
    await p.waitUntilSettled(60_000);
    sending = false;
    await pruning;

    const dropped = reports.flatMap((r) => r.months.filter((m) => m.action === 'dropped'));
    expect(dropped.map((m) => [m.partition, m.events])).toEqual([[oldPartition, 20]]);
    expect(reports.reduce((s, r) => s + r.batchesDeleted, 0)).toBe(users.length);
    expect((await c.query('SELECT to_regclass($1)::text AS r', [oldPartition])).rows[0].r).toBeNull();
    // The old month's uses stay, as totals.
    const daily = await c.query('SELECT sum(charged)::int AS charged FROM usage_daily');
    expect(daily.rows[0].charged).toBe(5 * users.length);
    await p.expectExactTotals();
  }, 120_000);
});
