// Group commit of one kind of statement (src/ledger/coalesce.ts): calls made while one is in flight go
// together in the next, a lone call waits for nothing, one key never appears twice in a statement, and
// an error caused by an item's values (SQLSTATE class 22 or 23) fails only that call while any other
// error fails every call.
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coalesce } from '../../src/ledger/coalesce.js';
import { createTestDatabase } from '../support/services.js';

/** A promise and the functions that settle it. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

describe('coalesce, in memory', () => {
  it('gathers the calls made while a statement is in flight into the next one; each gets its own result', async () => {
    const batches: number[][] = [];
    const started = deferred();
    const gate = deferred();
    const times10 = coalesce(async (items: readonly number[]) => {
      batches.push([...items]);
      started.resolve();
      if (batches.length === 1) await gate.promise; // the first statement stays in flight
      return items.map((x) => x * 10);
    });

    const first = times10(0);
    await started.promise;
    // 49 calls while it is in flight, over several turns of the event loop.
    const rest: Promise<number>[] = [];
    for (let i = 1; i < 50; i++) {
      rest.push(times10(i));
      if (i % 10 === 0) await nextTurn();
    }
    await sleep(5);
    expect(batches).toEqual([[0]]); // nothing else left while the first was in flight
    gate.resolve();

    const results = await Promise.all([first, ...rest]);
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i * 10));
    expect(batches.length).toBeLessThanOrEqual(3);
    expect(batches.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('sends a lone call at once, with no timer', async () => {
    const echo = coalesce(async (items: readonly string[]) => [...items]);
    await echo('warm-up');
    const t = performance.now();
    expect(await echo('alone')).toBe('alone');
    expect(performance.now() - t).toBeLessThan(50);
  });

  it('never puts two calls of one key in one statement: the later one goes in a following round', async () => {
    const batches: { key: string; v: number }[][] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const run = coalesce(
      async (items: readonly { key: string; v: number }[]) => {
        batches.push([...items]);
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await sleep(2);
        inFlight--;
        return items.map((x) => `${x.key}:${x.v}`);
      },
      { keyOf: (x) => x.key },
    );

    // One gather: all made in the same turn, while nothing is in flight.
    const calls = [
      run({ key: 'a', v: 1 }),
      run({ key: 'b', v: 2 }),
      run({ key: 'a', v: 3 }),
      run({ key: 'c', v: 4 }),
      run({ key: 'a', v: 5 }),
      run({ key: 'b', v: 6 }),
    ];
    expect(await Promise.all(calls)).toEqual(['a:1', 'b:2', 'a:3', 'c:4', 'a:5', 'b:6']);

    for (const b of batches) expect(new Set(b.map((x) => x.key)).size).toBe(b.length);
    const batchOf = (v: number) => batches.findIndex((b) => b.some((x) => x.v === v));
    // Same key: separate statements, in the order the calls were made.
    expect(batchOf(1)).toBeLessThan(batchOf(3));
    expect(batchOf(3)).toBeLessThan(batchOf(5));
    expect(batchOf(2)).toBeLessThan(batchOf(6));
    // Distinct keys still share: three rounds (a appears three times), not six statements.
    expect(batches.map((b) => b.map((x) => x.v))).toEqual([[1, 2, 4], [3, 6], [5]]);
    // The rounds run one after the other.
    expect(maxInFlight).toBe(1);
  });

  // More calls than maxBatch make several statements: they run one after another.
  it('runs one statement of a kind at a time, even past maxBatch', async () => {
    const log: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const run = coalesce(
      async (items: readonly { key: string; v: number }[]) => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        log.push(`start ${items.map((x) => x.v).join(',')}`);
        await sleep(5);
        log.push(`end ${items.map((x) => x.v).join(',')}`);
        inFlight--;
        return items.map((x) => x.v);
      },
      { maxBatch: 2, keyOf: (x) => x.key },
    );
    const out = await Promise.all([
      run({ key: 'a', v: 1 }),
      run({ key: 'b', v: 2 }),
      run({ key: 'a', v: 3 }),
      run({ key: 'c', v: 4 }),
    ]);
    expect(out).toEqual([1, 2, 3, 4]);
    expect(log.indexOf('end 1,2')).toBeLessThan(
      log.findIndex((x) => x.startsWith('start') && x.includes('3')),
    );
    expect(maxInFlight).toBe(1);
  });

  it('fails every call of the statement on an error that is not a PostgreSQL ERROR, without re-running it', async () => {
    let runs = 0;
    const run = coalesce(async (items: readonly number[]) => {
      runs++;
      if (items.length > 1) throw new Error('connection lost');
      return items.map((x) => x + 1);
    });
    const calls = [run(1), run(2), run(3)].map((p) =>
      p.then(
        (v) => ({ ok: v }),
        (e: Error) => ({ err: e.message }),
      ),
    );
    expect(await Promise.all(calls)).toEqual([
      { err: 'connection lost' },
      { err: 'connection lost' },
      { err: 'connection lost' },
    ]);
    expect(runs).toBe(1);
    // The next statement is not affected.
    expect(await run(4)).toBe(5);
  });
});

describe('coalesce against PostgreSQL', () => {
  let pool: pg.Pool;
  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: await createTestDatabase('coalesce'), max: 8 });
    pool.on('error', () => {}); // the terminated connection of the FATAL case
    await pool.query(`CREATE TABLE scratch (id int PRIMARY KEY, v int NOT NULL CHECK (v >= 0))`);
  });
  afterAll(async () => pool.end());

  const INSERT = `INSERT INTO scratch (id, v) SELECT * FROM unnest($1::int[], $2::int[]) RETURNING id`;
  /** Inserts its items into scratch in one statement; returns each item's id. */
  const inserter = (statements: number[][], sql = INSERT) =>
    coalesce(async (items: readonly { id: number; v: number }[]) => {
      statements.push(items.map((x) => x.id));
      const r = await pool.query<{ id: number }>(sql, [items.map((x) => x.id), items.map((x) => x.v)]);
      const ids = new Set(r.rows.map((x) => x.id));
      return items.map((x) => (ids.has(x.id) ? x.id : -1));
    });

  const settled = <T>(p: Promise<T>) =>
    p.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );

  it('a bad row fails only its own call: the others are inserted', async () => {
    await pool.query(`INSERT INTO scratch (id, v) VALUES (100, 0)`);
    const statements: number[][] = [];
    const insert = inserter(statements);
    const out = await Promise.all(
      [
        { id: 101, v: 1 },
        { id: 102, v: -1 }, // violates the CHECK
        { id: 103, v: 3 },
        { id: 100, v: 4 }, // violates the primary key
        { id: 104, v: 5 },
      ].map((x) => settled(insert(x))),
    );

    expect(out[0]).toEqual({ value: 101 });
    expect(out[2]).toEqual({ value: 103 });
    expect(out[4]).toEqual({ value: 104 });
    const check = (out[1] as { error: unknown }).error;
    expect(check).toBeInstanceOf(pg.DatabaseError);
    expect(check).toMatchObject({ code: '23514', constraint: 'scratch_v_check' });
    const unique = (out[3] as { error: unknown }).error;
    expect(unique).toBeInstanceOf(pg.DatabaseError);
    expect(unique).toMatchObject({ code: '23505', constraint: 'scratch_pkey' });

    // One statement of all five (rolled back), then halves, one after another, down
    // to each bad row alone.
    expect(statements).toEqual([
      [101, 102, 103, 100, 104],
      [101, 102, 103],
      [101, 102],
      [101],
      [102],
      [103],
      [100, 104],
      [100],
      [104],
    ]);
    const rows = await pool.query<{ id: number; v: number }>(
      `SELECT id, v FROM scratch WHERE id BETWEEN 100 AND 199 ORDER BY id`,
    );
    expect(rows.rows).toEqual([
      { id: 100, v: 0 },
      { id: 101, v: 1 },
      { id: 103, v: 3 },
      { id: 104, v: 5 },
    ]);
  });

  it('an error that is not about an item (the connection ended: it may have committed) fails every call, none re-run', async () => {
    const statements: number[][] = [];
    // The statement's backend terminates itself before inserting.
    const insert = inserter(
      statements,
      `WITH bye AS MATERIALIZED (SELECT pg_terminate_backend(pg_backend_pid()) AS t)
       INSERT INTO scratch (id, v) SELECT u.id, u.v FROM bye, unnest($1::int[], $2::int[]) AS u(id, v)
       RETURNING id`,
    );
    const out = await Promise.all([201, 202, 203].map((id) => settled(insert({ id, v: 1 }))));
    for (const o of out) {
      expect(o).toHaveProperty('error');
      expect((o as { error: unknown }).error).toMatchObject({ severity: 'FATAL' });
    }
    expect(statements).toEqual([[201, 202, 203]]);
    const rows = await pool.query(`SELECT id FROM scratch WHERE id BETWEEN 200 AND 299`);
    expect(rows.rowCount).toBe(0);
  });

  it('an ERROR that is not about an item (a deadlock) fails every call, none re-run', async () => {
    await pool.query(`CREATE OR REPLACE FUNCTION fake_deadlock() RETURNS int LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'test: deadlock' USING ERRCODE = '40P01'; END $$`);
    const statements: number[][] = [];
    const insert = inserter(
      statements,
      `INSERT INTO scratch (id, v) SELECT u.id, u.v + fake_deadlock() FROM unnest($1::int[], $2::int[]) AS u(id, v)
       RETURNING id`,
    );
    const out = await Promise.all([301, 302, 303].map((id) => settled(insert({ id, v: 1 }))));
    for (const o of out) expect(o).toMatchObject({ error: { code: '40P01' } });
    expect(statements).toEqual([[301, 302, 303]]);
  });
});
