// The ledger's multi-key statements (takeKeyLeases, probeKeys, formBatches, applyCommonSteps,
// keysHavePendingEvents, releaseKeyLeases) and the coalesced ChargeRunStatements built on them: one
// statement for several keys gives each key exactly what its one-key statement would, in input order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { applyCommonSteps, type CommonStep } from '../../src/ledger/apply-decision.js';
import { type FormBatchParams, formBatches } from '../../src/ledger/batches.js';
import { ChargeRunStatements } from '../../src/ledger/charge-run-statements.js';
import type { Sql } from '../../src/ledger/db.js';
import {
  type KeyLease,
  type LeasedWork,
  releaseKeyLeases,
  takeKeyLeases,
} from '../../src/ledger/key-lease.js';
import { keysHavePendingEvents, probeKeys } from '../../src/ledger/keys.js';
import { createPgLedger, type PgLedger } from '../../src/ledger/pg-ledger.js';
import { addEvents, successAttempt, testKeyId } from '../support/ledger.js';
import { createTestDatabase } from '../support/services.js';

let url: string;
let db: PrismaClient;
let ledger: PgLedger;
beforeAll(async () => {
  url = await createTestDatabase('ledger_multi');
  db = createPrisma(url);
  ledger = createPgLedger(url);
});
afterAll(async () => {
  await ledger.$disconnect();
  await db.$disconnect();
});

const LEASE_MS = 60_000;
let openIds = 0;
/** A new key of its own. */
const newKey = (label: string) => testKeyId(db, `mk-${label}-${++openIds}`);
const newKeys = (label: string, n: number) => Promise.all(Array.from({ length: n }, () => newKey(label)));

/** The lease of a 'leased' result. */
const leaseOf = (w: LeasedWork | undefined): KeyLease => {
  if (w?.kind !== 'leased') throw new Error(`expected a lease, got ${JSON.stringify(w?.kind)}`);
  return w.lease;
};
const takeOne = async (keyId: number, owner = 'w1') =>
  leaseOf((await takeKeyLeases(ledger, [keyId], owner, LEASE_MS))[0]);

/** Ends the key's current lease, as if its run had stalled past it, and has another run take it. */
const supersede = async (keyId: number, owner = 'fresh') => {
  await db.$executeRaw`UPDATE key_lease SET until = now() - interval '1 second' WHERE key_id = ${keyId}`;
  return takeOne(keyId, owner);
};

const leaseRow = (keyId: number) => db.keyLease.findUniqueOrThrow({ where: { keyId } });
const batchedSeq = async (id: number) => (await db.meterKey.findUniqueOrThrow({ where: { id } })).batchedSeq;
const seqOf = async (eventId: string) => (await db.usageEvent.findFirstOrThrow({ where: { eventId } })).seq;

let tradeNos = 0;
const params = (keyId: number, o: Partial<FormBatchParams> = {}): FormBatchParams => ({
  keyId,
  outTradeNo: `MK-${process.pid}-${++tradeNos}`,
  maxEvents: 100,
  maxCount: 1_000,
  deadlineSec: 60,
  ...o,
});

const attempt = successAttempt;

/** A key with one open batch of `counts`, formed under a lease that the run still holds. */
async function keyWithOpenBatch(label: string, counts: number[]) {
  const keyId = await newKey(label);
  await addEvents(db, keyId, counts, label);
  const lease = await takeOne(keyId);
  const [formed] = await formBatches(ledger, [{ ...params(keyId), lease }]);
  if (!formed?.batch) throw new Error('expected a batch');
  return { keyId, lease, batch: formed.batch };
}

describe('takeKeyLeases', () => {
  it('leases the free keys and reports the held one busy, a result per key in input order', async () => {
    const [k1, k2, k3] = await newKeys('take', 3);
    const held = await takeOne(k2!, 'other');
    // Not in key order, to see the results come back in input order.
    const out = await takeKeyLeases(ledger, [k3!, k2!, k1!], 'w1', LEASE_MS);
    expect(out).toEqual([
      { kind: 'leased', lease: { keyId: k3, token: 1n, leaseMs: LEASE_MS }, pending: undefined },
      { kind: 'busy' },
      { kind: 'leased', lease: { keyId: k1, token: 1n, leaseMs: LEASE_MS }, pending: undefined },
    ]);
    expect(await leaseRow(k1!)).toMatchObject({ owner: 'w1', token: 1n, until: expect.any(Date) });
    expect(await leaseRow(k3!)).toMatchObject({ owner: 'w1', token: 1n, until: expect.any(Date) });
    // The held lease is untouched.
    expect(await leaseRow(k2!)).toMatchObject({ owner: 'other', token: held.token });
  });

  it('reads, with each lease, its own key’s open batch and pending events', async () => {
    const withBatch = await keyWithOpenBatch('take-b', [2, 3]);
    await releaseKeyLeases(ledger, [withBatch.lease]);
    const [pendingOnly, nothing] = await newKeys('take-p', 2);
    await addEvents(db, pendingOnly!, [1], 'take-p');
    const out = await takeKeyLeases(ledger, [nothing!, withBatch.keyId, pendingOnly!], 'w1', LEASE_MS);
    expect(out[0]).toEqual({ kind: 'leased', lease: expect.objectContaining({ keyId: nothing }) });
    expect(out[0]).not.toHaveProperty('batch');
    expect(out[1]).toMatchObject({
      kind: 'leased',
      lease: { keyId: withBatch.keyId, token: withBatch.lease.token + 1n },
      batch: { id: withBatch.batch.id, keyId: withBatch.keyId, count: 5 },
    });
    expect((out[1] as { pending?: unknown }).pending).toBeUndefined();
    expect(out[2]).toMatchObject({
      kind: 'leased',
      lease: { keyId: pendingOnly },
      pending: { oldestAgeMs: expect.any(Number), newestAgeMs: expect.any(Number) },
    });
    expect(out[2]).not.toHaveProperty('batch');
  });
});

describe('formBatches', () => {
  it('forms each key’s batch under its own lease; a stale lease forms nothing; no events, no batch', async () => {
    const [a, b, stale, empty] = await newKeys('form', 4);
    const aIds = await addEvents(db, a!, [3, 4, 10], 'form-a');
    const bIds = await addEvents(db, b!, [1, 1, 1, 1], 'form-b');
    await addEvents(db, stale!, [5], 'form-s');
    const leases = (await takeKeyLeases(ledger, [a!, b!, stale!, empty!], 'w1', LEASE_MS)).map(leaseOf);
    const fresh = await supersede(stale!);
    const staleBefore = await leaseRow(stale!);

    const items = [
      { ...params(a!, { maxCount: 8 }), lease: leases[0]! }, // 3 + 4, stops before 10
      { ...params(stale!), lease: leases[2]! },
      { ...params(b!, { maxEvents: 3 }), lease: leases[1]! },
      { ...params(empty!), lease: leases[3]! },
    ];
    const out = await formBatches(ledger, items);

    expect(out).toHaveLength(4);
    expect(out[0]).toMatchObject({
      leased: true,
      batch: {
        keyId: a,
        outTradeNo: items[0]!.outTradeNo,
        count: 7,
        eventCount: 2,
        attempts: 0,
        parentId: null,
        firstAttemptAt: expect.any(Date),
        openId: expect.stringContaining('mk-form-'),
      },
    });
    expect(out[1]).toEqual({ leased: false, batch: undefined });
    expect(out[2]).toMatchObject({
      leased: true,
      batch: { keyId: b, outTradeNo: items[2]!.outTradeNo, count: 3, eventCount: 3 },
    });
    expect(out[3]).toEqual({ leased: true, batch: undefined });

    // Each key's batched_seq moved to its own batch's last event; the others did not move.
    expect(await batchedSeq(a!)).toBe(await seqOf(aIds[1]!));
    expect(await batchedSeq(b!)).toBe(await seqOf(bIds[2]!));
    expect(await batchedSeq(stale!)).toBe(0n);
    expect(await batchedSeq(empty!)).toBe(0n);
    const batches = await db.chargeBatch.findMany({
      where: { keyId: { in: [a!, b!, stale!, empty!] } },
      orderBy: { id: 'asc' },
    });
    expect(batches.map((x) => [x.keyId, x.count, x.eventCount, x.status])).toEqual(
      expect.arrayContaining([
        [a, 7, 2, 'open'],
        [b, 3, 3, 'open'],
      ]),
    );
    expect(batches).toHaveLength(2);
    expect(batches.find((x) => x.keyId === a)).toMatchObject({
      firstSeq: await seqOf(aIds[0]!),
      lastSeq: await seqOf(aIds[1]!),
    });
    // The stale run did not renew the lease it lost.
    expect(await leaseRow(stale!)).toEqual(staleBefore);
    expect(staleBefore).toMatchObject({ token: fresh.token, owner: 'fresh' });
  });
});

describe('applyCommonSteps', () => {
  it('applies each step under its own lease; a lost lease changes nothing of its key', async () => {
    const charged = await keyWithOpenBatch('apply-c', [2, 3]);
    const failed = await keyWithOpenBatch('apply-f', [4]);
    const lost = await keyWithOpenBatch('apply-l', [6]);
    const fresh = await supersede(lost.keyId);
    const lostLeaseBefore = await leaseRow(lost.keyId);

    const steps: CommonStep[] = [
      { ...charged, attempt: attempt(charged.batch), charged: true, release: true },
      {
        ...lost,
        attempt: attempt(lost.batch),
        charged: true,
        release: true,
      },
      {
        ...failed,
        attempt: attempt(failed.batch, {
          outcome: 'error',
          httpStatus: 500,
          errorCode: 28001003,
          errorKind: 'server',
          description: 'busy',
        }),
        charged: false,
        release: false,
      },
    ];
    expect(await applyCommonSteps(ledger, steps)).toEqual([true, false, true]);

    const batch = (id: bigint) => db.chargeBatch.findUniqueOrThrow({ where: { id } });
    const attempts = (batchId: bigint) => db.callAttempt.findMany({ where: { batchId } });

    expect(await batch(charged.batch.id)).toMatchObject({ status: 'charged', chargedCount: 5, attempts: 1 });
    expect(await attempts(charged.batch.id)).toEqual([
      expect.objectContaining({
        attemptNo: 1,
        outcome: 'success',
        count: 5,
        logid: `LOG-${charged.batch.id}`,
      }),
    ]);
    // release: the run's lease ended with the step (the token stays).
    expect(await leaseRow(charged.keyId)).toMatchObject({
      until: null,
      owner: null,
      token: charged.lease.token,
    });

    expect(await batch(failed.batch.id)).toMatchObject({
      status: 'open',
      attempts: 1,
      lastErrorCode: 28001003,
      lastErrorKind: 'server',
      lastError: 'busy',
    });
    expect(await attempts(failed.batch.id)).toEqual([
      expect.objectContaining({ attemptNo: 1, outcome: 'error', httpStatus: 500, errorCode: 28001003 }),
    ]);
    // Not released: renewed, still this run's.
    const failedLease = await leaseRow(failed.keyId);
    expect(failedLease).toMatchObject({ owner: 'w1', token: failed.lease.token });
    expect(failedLease.until!.getTime()).toBeGreaterThan(Date.now() + LEASE_MS / 2);

    // The lost lease: its batch still open and untouched, no attempt row, the new run's lease as it was.
    expect(await batch(lost.batch.id)).toMatchObject({ status: 'open', attempts: 0, chargedCount: 0 });
    expect(await attempts(lost.batch.id)).toEqual([]);
    expect(await leaseRow(lost.keyId)).toEqual(lostLeaseBefore);
    expect(lostLeaseBefore).toMatchObject({ token: fresh.token, owner: 'fresh' });
  });
});

describe('keys given twice', () => {
  it('the statements that write a key reject a key that appears twice, and write nothing', async () => {
    const k = await newKey('twice');
    await addEvents(db, k, [1], 'twice');
    await expect(takeKeyLeases(ledger, [k, k], 'w1', LEASE_MS)).rejects.toThrow('a key appears twice');
    expect(await db.keyLease.findUnique({ where: { keyId: k } })).toBeNull();

    const lease = await takeOne(k);
    await expect(formBatches(ledger, [params(k), { ...params(k), lease }])).rejects.toThrow(
      'a key appears twice',
    );
    expect(await db.chargeBatch.count({ where: { keyId: k } })).toBe(0);
    expect(await batchedSeq(k)).toBe(0n);

    const [formed] = await formBatches(ledger, [{ ...params(k), lease }]);
    const b = formed!.batch!;
    const step: CommonStep = { lease, batch: b, attempt: attempt(b), charged: true, release: true };
    await expect(applyCommonSteps(ledger, [step, { ...step, charged: false }])).rejects.toThrow(
      'a key appears twice',
    );
    expect(await db.chargeBatch.findUniqueOrThrow({ where: { id: b.id } })).toMatchObject({
      status: 'open',
      attempts: 0,
    });
    expect(await db.callAttempt.count({ where: { batchId: b.id } })).toBe(0);
  });
});

describe('probeKeys and keysHavePendingEvents', () => {
  it('give a result per key in input order, for repeated and unknown keys too', async () => {
    const open = await keyWithOpenBatch('probe-o', [2]); // an open batch, nothing pending
    const [pending, none] = await newKeys('probe', 2);
    await addEvents(db, pending!, [1, 1], 'probe-p');
    const unknown = 2_000_000_000;
    const keys = [open.keyId, unknown, pending!, open.keyId, none!, pending!];

    const probed = await probeKeys(ledger, keys);
    const ages = { oldestAgeMs: expect.any(Number), newestAgeMs: expect.any(Number) };
    expect(probed).toEqual([
      { openBatch: true },
      { openBatch: false },
      { openBatch: false, pending: ages },
      { openBatch: true },
      { openBatch: false },
      { openBatch: false, pending: ages },
    ]);
    for (const i of [0, 1, 3, 4]) expect(probed[i]).not.toHaveProperty('pending');
    expect(probed[2]!.pending!.oldestAgeMs).toBeGreaterThanOrEqual(probed[2]!.pending!.newestAgeMs);
    // A probe takes nothing.
    expect(await db.keyLease.findUnique({ where: { keyId: pending! } })).toBeNull();

    expect(await keysHavePendingEvents(ledger, keys)).toEqual([false, false, true, false, false, true]);
    expect(await probeKeys(ledger, [])).toEqual([]);
    expect(await keysHavePendingEvents(ledger, [])).toEqual([]);
  });
});

describe('releaseKeyLeases', () => {
  it('ends the leases a run still holds and leaves a superseded run’s alone', async () => {
    const [k1, k2] = await newKeys('release', 2);
    const l1 = await takeOne(k1!);
    const old = await takeOne(k2!);
    const fresh = await supersede(k2!);
    await releaseKeyLeases(ledger, [l1, old]);
    expect(await leaseRow(k1!)).toMatchObject({ until: null, owner: null, token: l1.token });
    expect(await leaseRow(k2!)).toMatchObject({
      owner: 'fresh',
      token: fresh.token,
      until: expect.any(Date),
    });
  });
});

describe('ChargeRunStatements', () => {
  it('two owners racing for the same 20 keys: each key is leased by exactly one', async () => {
    const keys = await newKeys('race', 20);
    const other = createPgLedger(url); // another worker's pool
    const statements = { A: 0, B: 0 };
    /** The ledger, counting the statements sent through it. */
    const counted = (l: Sql, owner: 'A' | 'B'): Sql => ({
      $queryRaw: ((...args: Parameters<Sql['$queryRaw']>) => {
        statements[owner]++;
        return l.$queryRaw(...args);
      }) as Sql['$queryRaw'],
      $executeRaw: l.$executeRaw,
    });
    try {
      const a = new ChargeRunStatements(counted(ledger, 'A'), { owner: 'A', leaseMs: LEASE_MS });
      const b = new ChargeRunStatements(counted(other, 'B'), { owner: 'B', leaseMs: LEASE_MS });
      const out = await Promise.all(
        keys.flatMap((k, i) =>
          i % 2 === 0
            ? [
                a.takeLease(k).then((w) => ({ k, owner: 'A', w })),
                b.takeLease(k).then((w) => ({ k, owner: 'B', w })),
              ]
            : [
                b.takeLease(k).then((w) => ({ k, owner: 'B', w })),
                a.takeLease(k).then((w) => ({ k, owner: 'A', w })),
              ],
        ),
      );
      expect(out).toHaveLength(40);
      // Each owner's 20 calls went in a few statements, not 20.
      expect(statements.A).toBeLessThanOrEqual(3);
      expect(statements.B).toBeLessThanOrEqual(3);
      const rows = await db.keyLease.findMany({ where: { keyId: { in: keys } } });
      expect(rows).toHaveLength(20);
      for (const k of keys) {
        const winners = out.filter((x) => x.k === k && x.w.kind === 'leased');
        const losers = out.filter((x) => x.k === k && x.w.kind === 'busy');
        expect(winners, `key ${k}`).toHaveLength(1);
        expect(losers, `key ${k}`).toHaveLength(1);
        expect(rows.find((r) => r.keyId === k)).toMatchObject({ owner: winners[0]!.owner, token: 1n });
        expect(leaseOf(winners[0]!.w)).toEqual({ keyId: k, token: 1n, leaseMs: LEASE_MS });
      }
    } finally {
      await other.$disconnect();
    }
  });

  /**
   * Two runs' batch formations gathered in one statement through `on`, the second with an out_trade_no
   * that is already taken (a unique violation).
   */
  async function formWithOneBadRow(on: Sql) {
    const s = new ChargeRunStatements(on, { owner: 'w1', leaseMs: LEASE_MS });
    const taken = await keyWithOpenBatch('dup', [1]);
    const [k1, k2] = await newKeys('dup', 2);
    await addEvents(db, k1!, [2], 'dup-1');
    await addEvents(db, k2!, [3], 'dup-2');
    const [l1, l2] = (await takeKeyLeases(ledger, [k1!, k2!], 'w1', LEASE_MS)).map(leaseOf);
    const [ok, bad] = await Promise.allSettled([
      s.form({ ...params(k1!), lease: l1! }),
      s.form({ ...params(k2!, { outTradeNo: taken.batch.outTradeNo }), lease: l2! }),
    ]);
    expect(ok).toMatchObject({
      status: 'fulfilled',
      value: { leased: true, batch: { keyId: k1, count: 2 } },
    });
    expect(bad).toMatchObject({ status: 'rejected' });
    expect(await db.chargeBatch.count({ where: { keyId: k2! } })).toBe(0);
    expect(await batchedSeq(k2!)).toBe(0n);
    return (bad as PromiseRejectedResult).reason as unknown;
  }

  it('one run’s bad row fails only its own call of a coalesced statement (pg ledger)', async () => {
    expect(await formWithOneBadRow(ledger)).toMatchObject({
      code: '23505',
      constraint: 'charge_batch_out_trade_no_key',
    });
  });
});
