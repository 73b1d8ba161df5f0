// The charger's decisions (src/metering/decide.ts) as a real Charger applies them:
// real ledger (PostgreSQL), real rate limiter (Redis), and in place of Douyin a
// stub of MeterDouyinApi that answers from a script and records every call. Each
// case is one decision; decide.test.ts tests the same rules as a pure table.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CallOptions, DOUYIN_CODES, DouyinError, RateLimiter } from '../../src/douyin/index.js';
import type { DecrUserRemainTimesInput } from '../../src/douyin/schemas.js';
import type { Charger } from '../../src/metering/charger.js';
import { MAX_DERIVED } from '../../src/metering/decide.js';
import { RetryableChargeError } from '../../src/metering/errors.js';
import type { MeterDouyinApi } from '../../src/metering/interfaces.js';
import { keyStatuses } from '../support/ledger.js';
import { uniquePrefix } from '../support/services.js';
import { type ChargerHarness, startChargerHarness } from './charger-harness.js';

let h: ChargerHarness;
beforeAll(async () => {
  h = await startChargerHarness('decisions');
});
afterAll(async () => h.close());

/** One scripted answer to DecrUserRemainTimes: success, an error it throws, or either after some work. */
type DecrAnswer = 'ok' | DouyinError | ((input: DecrUserRemainTimesInput) => Promise<'ok' | DouyinError>);
/** One scripted answer to GetUserServicePurchaseList: the user's remaining times of mode m1, or an error. */
type ListAnswer = number | DouyinError;

interface StubApi extends MeterDouyinApi {
  /** Every DecrUserRemainTimes request that left (after its beforeSend), in order. */
  decrCalls: { outTradeNo: string; count: number; at: number }[];
  /** Every GetUserServicePurchaseList request that left, in order. */
  listCalls: { openId: string; serviceId: string }[];
}

/**
 * A MeterDouyinApi answering from a script, one answer per call in order. A call
 * beyond the script throws a plain Error, which the charger does not catch: an
 * unexpected call fails the test.
 */
function stubApi(script: { decr?: DecrAnswer[]; remaining?: ListAnswer[] }): StubApi {
  const decr = [...(script.decr ?? [])];
  const remaining = [...(script.remaining ?? [])];
  const decrCalls: StubApi['decrCalls'] = [];
  const listCalls: StubApi['listCalls'] = [];
  const leave = (opts?: CallOptions) => opts?.beforeSend?.(opts.signal ?? new AbortController().signal);
  return {
    decrCalls,
    listCalls,
    async decrUserRemainTimes(input, opts) {
      await leave(opts);
      decrCalls.push({ outTradeNo: input.outTradeNo, count: input.count, at: performance.now() });
      const next = decr.shift();
      if (next === undefined) throw new Error(`stub: unexpected DecrUserRemainTimes ${input.outTradeNo}`);
      const answer = typeof next === 'function' ? await next(input) : next;
      if (answer !== 'ok') throw answer;
      return { logid: `LOG-OK-${input.outTradeNo}`, httpStatus: 200, description: '' };
    },
    async getUserServicePurchaseList(input, opts) {
      await leave(opts);
      listCalls.push({ openId: input.openId, serviceId: input.serviceId });
      const next = remaining.shift();
      if (next === undefined) throw new Error(`stub: unexpected GetUserServicePurchaseList ${input.openId}`);
      if (next instanceof DouyinError) throw next;
      // Another mode's times are listed too: only the batch's own mode counts.
      return {
        purchaseInfoList: [
          { serviceModeId: 'm1', remainServiceTimes: next },
          { serviceModeId: 'm2', remainServiceTimes: 1_000 },
        ],
      };
    },
  };
}

const refused = () =>
  new DouyinError({
    kind: 'insufficient_balance',
    errorCode: DOUYIN_CODES.SIM_INSUFFICIENT_TIMES,
    description: 'remain times not enough',
    logid: 'LOG-REFUSED',
    httpStatus: 200,
  });
const busy = () =>
  new DouyinError({
    kind: 'transient',
    errorCode: DOUYIN_CODES.SYSTEM_BUSY,
    description: 'system busy',
    logid: 'LOG-BUSY',
    httpStatus: 200,
  });
const tooFrequent = () =>
  new DouyinError({
    kind: 'rate_limited',
    errorCode: DOUYIN_CODES.TOO_FREQUENT,
    description: 'too frequent',
    logid: 'LOG-FREQ',
    httpStatus: 200,
  });

/** The key's batches, oldest first (a parent before its derived batches). */
const batchesOf = (keyId: number) => h.db.chargeBatch.findMany({ where: { keyId }, orderBy: { id: 'asc' } });
const attemptsOf = (batchId: bigint) =>
  h.db.callAttempt.findMany({ where: { batchId }, orderBy: { attemptNo: 'asc' } });

/** The error a run that must be retried rejects with. */
async function retried(charger: Charger, keyId: number): Promise<RetryableChargeError> {
  const err = await charger.chargeKey(keyId).then(
    (outcome) => new Error(`the run ended with '${outcome}' instead of asking to be retried`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RetryableChargeError);
  return err as RetryableChargeError;
}

/** The real limiter, recording the penalties it is given. */
class RecordingLimiter extends RateLimiter {
  penalties: number[] = [];
  override async penalize(ms: number): Promise<void> {
    this.penalties.push(ms);
    await super.penalize(ms);
  }
}
const recordingLimiter = () =>
  new RecordingLimiter({ redis: h.redis, key: uniquePrefix('cd-rl'), qps: 1_000 });

/** Sleeps until the batch's retry deadline has passed (by `marginMs`), on the database's clock. */
async function pastDeadline(outTradeNo: string, marginMs = 100): Promise<void> {
  const b = await h.db.chargeBatch.findUniqueOrThrow({ where: { outTradeNo } });
  await sleep(Math.max(0, b.deadlineAt.getTime() - Date.now() + marginMs));
}

describe('the charger applies each decision to the ledger', () => {
  it('a success settles the batch charged with its whole count in one call', async () => {
    const keyId = await h.seedKey('cd-ok', [2, 3]);
    const api = stubApi({ decr: ['ok'] });
    expect(await h.charger({ api }).chargeKey(keyId)).toBe('charged');

    const [batch, ...others] = await batchesOf(keyId);
    expect(others).toEqual([]);
    expect(batch).toMatchObject({
      status: 'charged',
      count: 5,
      chargedCount: 5,
      overageCount: 0,
      attempts: 1,
    });
    expect(api.decrCalls).toEqual([{ outTradeNo: batch!.outTradeNo, count: 5, at: expect.any(Number) }]);
    expect(await attemptsOf(batch!.id)).toEqual([
      expect.objectContaining({ attemptNo: 1, outTradeNo: batch!.outTradeNo, count: 5, outcome: 'success' }),
    ]);
    expect(await keyStatuses(h.db, keyId)).toEqual(['charged', 'charged']);
  });

  it('reject policy: a refused batch is settled insufficient and nothing is deducted', async () => {
    const keyId = await h.seedKey('cd-reject', [3, 3, 2]);
    const api = stubApi({ decr: [refused()] });
    const charger = h.charger({ api, insufficientPolicy: 'reject' });
    expect(await charger.chargeKey(keyId)).toBe('insufficient');

    const [batch, ...others] = await batchesOf(keyId);
    expect(others).toEqual([]); // no derived batch
    expect(batch).toMatchObject({
      status: 'insufficient',
      count: 8,
      chargedCount: 0,
      overageCount: 0,
      attempts: 1,
      lastErrorKind: 'insufficient_balance',
      lastErrorCode: DOUYIN_CODES.SIM_INSUFFICIENT_TIMES,
      deadReason: null,
    });
    expect(api.decrCalls.map(({ outTradeNo, count }) => ({ outTradeNo, count }))).toEqual([
      { outTradeNo: batch!.outTradeNo, count: 8 },
    ]);
    expect(api.listCalls).toEqual([]); // the reject policy never reads the remaining times
    expect(await attemptsOf(batch!.id)).toEqual([
      expect.objectContaining({ outcome: 'error', errorKind: 'insufficient_balance', logid: 'LOG-REFUSED' }),
    ]);
    expect(await keyStatuses(h.db, keyId)).toEqual(['insufficient', 'insufficient', 'insufficient']);
    // Final: the next run finds nothing to do and calls nobody.
    expect(await charger.chargeKey(keyId)).toBe('idle');
    expect(api.decrCalls).toHaveLength(1);
  });

  it('partial policy, none remaining: the parent is partial with every use overage and no derived call', async () => {
    const keyId = await h.seedKey('cd-none', [3, 3, 2]);
    const api = stubApi({ decr: [refused()], remaining: [0] });
    expect(await h.charger({ api, insufficientPolicy: 'partial' }).chargeKey(keyId)).toBe('partial');

    const [parent, ...derived] = await batchesOf(keyId);
    expect(derived).toEqual([]);
    expect(parent).toMatchObject({
      status: 'partial',
      parentId: null,
      count: 8,
      chargedCount: 0,
      overageCount: 8,
      attempts: 1,
    });
    expect(api.decrCalls.map((c) => c.outTradeNo)).toEqual([parent!.outTradeNo]);
    expect(api.listCalls).toEqual([{ openId: 'cd-none', serviceId: 's1' }]);
    expect(await attemptsOf(parent!.id)).toHaveLength(1);
    expect(await keyStatuses(h.db, keyId)).toEqual(['overage', 'overage', 'overage']);
  });

  it('partial policy, some remaining: a derived batch deducts what is left and the rest is overage', async () => {
    const keyId = await h.seedKey('cd-some', [3, 3, 2]);
    const api = stubApi({ decr: [refused(), 'ok'], remaining: [5] });
    expect(await h.charger({ api, insufficientPolicy: 'partial' }).chargeKey(keyId)).toBe('partial');

    const [parent, derived, ...others] = await batchesOf(keyId);
    expect(others).toEqual([]);
    expect(parent).toMatchObject({ status: 'partial', count: 8, chargedCount: 5, overageCount: 3 });
    expect(derived).toMatchObject({
      status: 'charged',
      parentId: parent!.id,
      outTradeNo: `${parent!.outTradeNo}-p1`,
      count: 5,
      chargedCount: 5,
      attempts: 1,
    });
    // The parent's count under its own out_trade_no, then what is left under the derived one.
    expect(api.decrCalls.map(({ outTradeNo, count }) => ({ outTradeNo, count }))).toEqual([
      { outTradeNo: parent!.outTradeNo, count: 8 },
      { outTradeNo: `${parent!.outTradeNo}-p1`, count: 5 },
    ]);
    expect(api.listCalls).toHaveLength(1);
    expect(await attemptsOf(derived!.id)).toEqual([
      expect.objectContaining({ outTradeNo: derived!.outTradeNo, count: 5, outcome: 'success' }),
    ]);
    // Events are charged whole while they fit in the 5 deducted: 3 fits, 3 + 3 does not.
    expect(await keyStatuses(h.db, keyId)).toEqual(['charged', 'overage', 'overage']);
  });

  it('partial policy, enough remaining now: no derived batch; the run is retried and resends the whole batch under its out_trade_no', async () => {
    const keyId = await h.seedKey('cd-enough', [3, 3, 2]);
    const api = stubApi({ decr: [refused(), 'ok'], remaining: [8] });
    const charger = h.charger({ api, insufficientPolicy: 'partial' });
    const err = await retried(charger, keyId);
    expect(err.kind).toBe('transient');

    const [open, ...none] = await batchesOf(keyId);
    expect(none).toEqual([]);
    expect(open).toMatchObject({
      status: 'open',
      count: 8,
      attempts: 1,
      lastErrorKind: 'insufficient_balance',
    });

    expect(await charger.chargeKey(keyId)).toBe('charged');
    const [parent, ...derived] = await batchesOf(keyId);
    expect(derived).toEqual([]);
    expect(parent).toMatchObject({
      status: 'charged',
      count: 8,
      chargedCount: 8,
      overageCount: 0,
      attempts: 2,
    });
    expect(api.decrCalls.map(({ outTradeNo, count }) => ({ outTradeNo, count }))).toEqual([
      { outTradeNo: parent!.outTradeNo, count: 8 },
      { outTradeNo: parent!.outTradeNo, count: 8 },
    ]);
    expect(api.listCalls).toHaveLength(1);
    expect((await attemptsOf(parent!.id)).map((a) => a.outcome)).toEqual(['error', 'success']);
  });

  it('partial policy: a refused derived batch is settled insufficient and the parent derives again from what is left now', async () => {
    const keyId = await h.seedKey('cd-rederive', [3, 3, 2]);
    // 5 left when read; spent elsewhere before the derived call lands; 2 left on the second read.
    const api = stubApi({ decr: [refused(), refused(), 'ok'], remaining: [5, 2] });
    expect(await h.charger({ api, insufficientPolicy: 'partial' }).chargeKey(keyId)).toBe('partial');

    const [parent, first, second, ...others] = await batchesOf(keyId);
    expect(others).toEqual([]);
    expect(first).toMatchObject({ status: 'insufficient', parentId: parent!.id, count: 5, chargedCount: 0 });
    expect(second).toMatchObject({
      status: 'charged',
      parentId: parent!.id,
      outTradeNo: `${parent!.outTradeNo}-p2`,
      count: 2,
    });
    expect(parent).toMatchObject({ status: 'partial', chargedCount: 2, overageCount: 6 });
    expect(api.decrCalls.map(({ outTradeNo, count }) => ({ outTradeNo, count }))).toEqual([
      { outTradeNo: parent!.outTradeNo, count: 8 },
      { outTradeNo: `${parent!.outTradeNo}-p1`, count: 5 },
      { outTradeNo: `${parent!.outTradeNo}-p2`, count: 2 },
    ]);
    expect(api.listCalls).toHaveLength(2);
    expect(await keyStatuses(h.db, keyId)).toEqual(['overage', 'overage', 'overage']);
  });

  it(`partial policy: after the derived-batch cap (MAX_DERIVED = ${MAX_DERIVED}) the parent stops deriving and is partial with every use overage`, async () => {
    expect(MAX_DERIVED).toBe(3); // the script below is written for three derived batches
    const keyId = await h.seedKey('cd-cap', [3, 3, 2]);
    // The parent and each derived batch are refused; the remaining times shrink between reads.
    const api = stubApi({ decr: [refused(), refused(), refused(), refused()], remaining: [5, 4, 3] });
    expect(await h.charger({ api, insufficientPolicy: 'partial' }).chargeKey(keyId)).toBe('partial');

    const [parent, ...derived] = await batchesOf(keyId);
    expect(parent).toMatchObject({ status: 'partial', count: 8, chargedCount: 0, overageCount: 8 });
    expect(derived.map((d) => [d.outTradeNo, d.count, d.status, d.parentId])).toEqual([
      [`${parent!.outTradeNo}-p1`, 5, 'insufficient', parent!.id],
      [`${parent!.outTradeNo}-p2`, 4, 'insufficient', parent!.id],
      [`${parent!.outTradeNo}-p3`, 3, 'insufficient', parent!.id],
    ]);
    expect(api.decrCalls.map(({ outTradeNo, count }) => ({ outTradeNo, count }))).toEqual([
      { outTradeNo: parent!.outTradeNo, count: 8 },
      { outTradeNo: `${parent!.outTradeNo}-p1`, count: 5 },
      { outTradeNo: `${parent!.outTradeNo}-p2`, count: 4 },
      { outTradeNo: `${parent!.outTradeNo}-p3`, count: 3 },
    ]);
    // At the cap the remaining times are not even read again.
    expect(api.listCalls).toHaveLength(3);
    expect(await keyStatuses(h.db, keyId)).toEqual(['overage', 'overage', 'overage']);
  });

  it('partial policy: when the remaining times cannot be read the parent stays open and the run is retried', async () => {
    const keyId = await h.seedKey('cd-noread', [4]);
    const api = stubApi({ decr: [refused()], remaining: [busy()] });
    const err = await retried(h.charger({ api, insufficientPolicy: 'partial' }), keyId);
    expect(err.kind).toBe('transient');
    expect(err.message).toMatch(/^reading remaining times: transient 2100004: system busy/);

    const [parent, ...derived] = await batchesOf(keyId);
    expect(derived).toEqual([]);
    expect(parent).toMatchObject({
      status: 'open',
      count: 4,
      attempts: 1,
      lastErrorKind: 'insufficient_balance',
    });
    expect(api.decrCalls).toHaveLength(1);
    expect(api.listCalls).toHaveLength(1);
  });

  it('a batch past its retry deadline goes dead without a call', async () => {
    const keyId = await h.seedKey('cd-deadline', [2]);
    const api = stubApi({ decr: [busy()] });
    const charger = h.charger({ api, deadlineSec: 1 });
    await retried(charger, keyId);
    const [batch] = await batchesOf(keyId);
    expect(batch).toMatchObject({ status: 'open', attempts: 1 });

    await pastDeadline(batch!.outTradeNo);
    expect(await charger.chargeKey(keyId)).toBe('dead');
    expect(api.decrCalls).toHaveLength(1); // only the first attempt: none after the deadline
    const dead = await h.db.chargeBatch.findUniqueOrThrow({ where: { id: batch!.id } });
    expect(dead).toMatchObject({ status: 'dead', chargedCount: 0, attempts: 1 });
    expect(dead.deadReason).toBe(`deadline: retry deadline ${dead.deadlineAt.toISOString()} passed`);
    expect(await attemptsOf(batch!.id)).toHaveLength(1);
    expect(await keyStatuses(h.db, keyId)).toEqual(['dead']);
  });

  it('a failed call answered after the deadline makes the batch dead', async () => {
    const keyId = await h.seedKey('cd-late', [2]);
    const timedOut = async (input: DecrUserRemainTimesInput) => {
      await pastDeadline(input.outTradeNo);
      return new DouyinError({ kind: 'timeout', description: 'no answer in time' });
    };
    const api = stubApi({ decr: [timedOut] });
    expect(await h.charger({ api, deadlineSec: 1 }).chargeKey(keyId)).toBe('dead');

    const [batch] = await batchesOf(keyId);
    expect(batch).toMatchObject({ status: 'dead', attempts: 1, lastErrorKind: 'timeout' });
    expect(batch!.deadReason).toBe('deadline: retry deadline passed; last error timeout: no answer in time');
    expect(api.decrCalls).toHaveLength(1);
    expect(await attemptsOf(batch!.id)).toEqual([
      expect.objectContaining({
        outTradeNo: batch!.outTradeNo,
        count: 2,
        outcome: 'error',
        errorKind: 'timeout',
      }),
    ]);
  });

  it("a 'too frequent' answer pushes the deployment's next call back by the penalty and the batch is retried with the same out_trade_no", async () => {
    const penaltyMs = 800;
    const keyId = await h.seedKey('cd-freq', [2, 2]);
    const otherKeyId = await h.seedKey('cd-freq-other', [1]);
    const api = stubApi({ decr: [tooFrequent(), 'ok', 'ok'] });
    const limiter = recordingLimiter();
    const charger = h.charger({ api, limiter, rateLimitPenaltyMs: penaltyMs });

    const err = await retried(charger, keyId);
    expect(err.kind).toBe('rate_limited');
    expect(limiter.penalties).toEqual([penaltyMs]);
    const [batch] = await batchesOf(keyId);
    expect(batch).toMatchObject({
      status: 'open',
      attempts: 1,
      lastErrorKind: 'rate_limited',
      lastErrorCode: DOUYIN_CODES.TOO_FREQUENT,
    });

    // Another key's call, through the same (deployment-wide) limiter, waits out the penalty.
    expect(await charger.chargeKey(otherKeyId)).toBe('charged');
    // Then the refused batch is sent again: same out_trade_no, same count.
    expect(await charger.chargeKey(keyId)).toBe('charged');
    const [refusedAt, otherAt, retryAt] = api.decrCalls.map((c) => c.at);
    expect(otherAt! - refusedAt!).toBeGreaterThanOrEqual(penaltyMs - 5);
    expect(retryAt!).toBeGreaterThan(otherAt!);
    expect(
      [api.decrCalls[0], api.decrCalls[2]].map((c) => ({ outTradeNo: c!.outTradeNo, count: c!.count })),
    ).toEqual([
      { outTradeNo: batch!.outTradeNo, count: 4 },
      { outTradeNo: batch!.outTradeNo, count: 4 },
    ]);
    expect(await h.db.chargeBatch.findUniqueOrThrow({ where: { id: batch!.id } })).toMatchObject({
      status: 'charged',
      chargedCount: 4,
      attempts: 2,
    });
    expect((await attemptsOf(batch!.id)).map((a) => a.errorKind)).toEqual(['rate_limited', null]);
  });

  it('a transient failure keeps the batch open and is retried with the same out_trade_no and count', async () => {
    const keyId = await h.seedKey('cd-transient', [1, 2, 3]);
    const api = stubApi({ decr: [busy(), 'ok'] });
    const limiter = recordingLimiter();
    const charger = h.charger({ api, limiter });

    const err = await retried(charger, keyId);
    expect(err.kind).toBe('transient');
    expect(limiter.penalties).toEqual([]); // only a "too frequent" answer slows the deployment down
    const [batch] = await batchesOf(keyId);
    expect(batch).toMatchObject({
      status: 'open',
      count: 6,
      attempts: 1,
      lastErrorKind: 'transient',
      lastErrorCode: DOUYIN_CODES.SYSTEM_BUSY,
    });
    expect(await keyStatuses(h.db, keyId)).toEqual(['batched', 'batched', 'batched']);

    expect(await charger.chargeKey(keyId)).toBe('charged');
    expect(api.decrCalls.map(({ outTradeNo, count }) => ({ outTradeNo, count }))).toEqual([
      { outTradeNo: batch!.outTradeNo, count: 6 },
      { outTradeNo: batch!.outTradeNo, count: 6 },
    ]);
    expect(await batchesOf(keyId)).toEqual([
      expect.objectContaining({ id: batch!.id, status: 'charged', chargedCount: 6, attempts: 2 }),
    ]);
    expect(
      (await attemptsOf(batch!.id)).map((a) => [a.attemptNo, a.outTradeNo, a.count, a.outcome, a.errorKind]),
    ).toEqual([
      [1, batch!.outTradeNo, 6, 'error', 'transient'],
      [2, batch!.outTradeNo, 6, 'success', null],
    ]);
  });

  it('a permanent error (invalid request) makes the batch dead with its reason', async () => {
    const keyId = await h.seedKey('cd-permanent', [2]);
    const invalid = new DouyinError({
      kind: 'invalid_request',
      errorCode: DOUYIN_CODES.INVALID_PARAMETER,
      description: 'invalid parameter',
      logid: 'LOG-INVALID',
      httpStatus: 200,
    });
    const api = stubApi({ decr: [invalid] });
    const charger = h.charger({ api });
    expect(await charger.chargeKey(keyId)).toBe('dead');

    const [batch] = await batchesOf(keyId);
    expect(batch).toMatchObject({
      status: 'dead',
      chargedCount: 0,
      attempts: 1,
      lastErrorKind: 'invalid_request',
      deadReason: 'permanent_error: invalid_request 2100005: invalid parameter (logid LOG-INVALID)',
    });
    expect(await attemptsOf(batch!.id)).toEqual([
      expect.objectContaining({ outcome: 'error', errorKind: 'invalid_request', errorCode: 2100005 }),
    ]);
    // Not retried: the next run finds nothing to do.
    expect(await charger.chargeKey(keyId)).toBe('idle');
    expect(api.decrCalls).toHaveLength(1);
    expect(await keyStatuses(h.db, keyId)).toEqual(['dead']);
  });
});
