// Charges one batching key: makes (at most) one DecrUserRemainTimes call per run
// for the key's open batch, or for a new batch formed from its pending events.
//
// Exactly-once rests on three rules:
// 1. A batch's out_trade_no and count are stored before its first call, and every
//    retry, crash recovery and replay sends exactly those (Douyin deduplicates).
// 2. An event joins a batch in the same statement that creates the batch, and only
//    from 'pending', so no event is in two batches.
// 3. Only one charge job per key runs at a time (BullMQ deduplication + job lock),
//    and a key's open batch is always finished before a new one is formed.
import { DouyinError, type ErrorKind } from '../douyin/errors.js';
import { sleep } from '../douyin/rate-limiter.js';
import {
  type AttemptRecord,
  type BatchRow,
  createDerivedBatch,
  derivedBatchCount,
  formBatch,
  keyWork,
  openBatchOfKey,
  recordFailedAttempt,
  settleBatch,
  settlePartialParent,
} from '../ledger/sql.js';
import { batchesTotal, rateLimitedTotal } from '../metrics.js';
import { RetryableChargeError } from './errors.js';
import type { ChargerOptions } from './interfaces.js';
import { newOutTradeNo } from './out-trade-no.js';

/** How many derived batches the partial policy tries before giving up on a parent. */
const MAX_DERIVED = 3;

/**
 * A call sent later than this after its rate-limiter slot takes a new slot: a
 * late call bunched with the next ones would exceed the platform's window.
 */
const MAX_SLOT_SKEW_MS = 20;

/** How long before its call's slot a batch is formed (forming takes a query). */
const FORM_LEAD_MS = 150;

export type ChargeOutcome = 'idle' | 'charged' | 'partial' | 'insufficient' | 'dead';

export class Charger {
  constructor(private readonly o: ChargerOptions) {}

  /** One run for a key. Throws RetryableChargeError when the call should be retried later. */
  async chargeKey(keyId: number, signal?: AbortSignal): Promise<ChargeOutcome> {
    const { db } = this.o;
    const work = await keyWork(db, keyId);
    if (!work.batch && !work.pending) return 'idle';
    // The batch is formed just before the call's slot (FORM_LEAD_MS), not before the
    // wait, so it takes in everything that arrived while the key waited its turn.
    const slotAt = await this.waitForSlot(signal, FORM_LEAD_MS);
    const batch =
      work.batch ??
      (await formBatch(db, {
        keyId,
        outTradeNo: newOutTradeNo(),
        maxEvents: this.o.maxEvents,
        maxCount: this.o.maxCount,
        deadlineSec: this.o.deadlineSec,
      }));
    if (!batch) return 'idle'; // the slot goes unused; slots are never handed back
    return this.send(batch, await this.untilSlot(slotAt, signal), signal);
  }

  /**
   * Sleeps until the slot, and returns the check the client runs right before it
   * sends (after the token is in hand): a call sent well after its slot would bunch
   * with the calls slotted after it, so a late one waits for a fresh slot first.
   */
  private async untilSlot(slotAt: number, signal?: AbortSignal): Promise<() => Promise<void>> {
    const early = slotAt - performance.now();
    if (early > 0) await sleep(early, signal);
    let at = slotAt;
    return async () => {
      for (let tries = 0; tries < 3 && performance.now() - at > MAX_SLOT_SKEW_MS; tries++) {
        at = await this.waitForSlot(signal);
      }
    };
  }

  /** Waits for a deployment-wide call slot; returns when the slot is (performance.now() clock). */
  private async waitForSlot(signal?: AbortSignal, leadMs = 0): Promise<number> {
    return (await this.o.limiter.acquire(signal, leadMs)).at;
  }

  private async send(
    batch: BatchRow,
    beforeSend: () => Promise<void>,
    signal?: AbortSignal,
  ): Promise<ChargeOutcome> {
    const { db, logger } = this.o;
    if (batch.deadlineAt.getTime() < Date.now()) {
      return this.dead(batch, null, `deadline passed after ${batch.attempts} attempt(s)`);
    }
    const startedAt = new Date();
    const t0 = performance.now();
    try {
      const res = await this.o.api.decrUserRemainTimes(
        {
          openId: batch.openId,
          serviceId: batch.serviceId,
          serviceModeId: batch.serviceModeId,
          count: batch.count,
          outTradeNo: batch.outTradeNo,
          isTestEnv: batch.isTestEnv,
        },
        { signal, beforeSend },
      );
      const attempt = this.attempt(batch, startedAt, t0, {
        httpStatus: res.httpStatus,
        logid: res.logid,
        description: res.description || null,
      });
      if (batch.parentId !== null) {
        // A derived (partial) batch: it and its parent settle together.
        await db.$transaction(async (tx) => {
          await settleBatch(tx, attempt, batch.id, { status: 'charged' });
          await settlePartialParent(tx, batch.parentId!, batch.count);
        });
        batchesTotal.inc({ outcome: 'partial' });
        return 'partial';
      }
      await settleBatch(db, attempt, batch.id, { status: 'charged' });
      batchesTotal.inc({ outcome: 'charged' });
      return 'charged';
    } catch (err) {
      if (!(err instanceof DouyinError)) throw err; // a bug or the database: BullMQ retries the run
      const attempt = this.attempt(batch, startedAt, t0, {
        httpStatus: err.httpStatus ?? null,
        logid: err.logid ?? null,
        description: err.description,
        errorCode: err.errorCode ?? null,
        subErrorCode: err.subErrorCode ?? null,
        errorKind: err.kind,
      });
      if (err.kind === 'insufficient_balance') return this.insufficient(batch, attempt, signal);
      if (err.retryable) {
        if (err.kind === 'rate_limited') {
          rateLimitedTotal.inc();
          await this.o.limiter.penalize(this.o.rateLimitPenaltyMs ?? 1_000);
        }
        if (batch.deadlineAt.getTime() < Date.now()) {
          return this.dead(batch, attempt, `deadline passed; last error ${describe(err)}`);
        }
        await recordFailedAttempt(db, attempt);
        logger.debug(
          { batchId: String(batch.id), kind: err.kind, logid: err.logid },
          'charge call failed; will retry',
        );
        throw new RetryableChargeError(err.kind, describe(err));
      }
      return this.dead(batch, attempt, `permanent error ${describe(err)}`);
    }
  }

  private async insufficient(
    batch: BatchRow,
    attempt: AttemptRecord,
    signal?: AbortSignal,
  ): Promise<ChargeOutcome> {
    const { db } = this.o;
    if (batch.parentId === null && this.o.insufficientPolicy === 'reject') {
      await settleBatch(db, attempt, batch.id, { status: 'insufficient' });
      batchesTotal.inc({ outcome: 'insufficient' });
      return 'insufficient';
    }
    // Partial policy. A derived batch that was itself refused is closed; the parent tries again.
    let parent = batch;
    if (batch.parentId !== null) {
      await settleBatch(db, attempt, batch.id, { status: 'insufficient' });
      const p = await openBatchOfKey(db, batch.keyId);
      if (!p || p.id !== batch.parentId) return 'idle';
      parent = p;
    } else {
      await recordFailedAttempt(db, attempt);
    }
    const n = await derivedBatchCount(db, parent.id);
    const remaining = n >= MAX_DERIVED ? 0 : await this.remainingTimes(parent, signal);
    if (remaining >= parent.count) {
      // The balance was topped up meanwhile: send the parent again, same out_trade_no.
      throw new RetryableChargeError('transient', 'balance now sufficient; retrying the full batch');
    }
    if (remaining <= 0) {
      await settlePartialParent(db, parent.id, 0);
      batchesTotal.inc({ outcome: 'partial' });
      return 'partial';
    }
    // Deduct what is left under a derived out_trade_no (different count, so a new id).
    await createDerivedBatch(db, parent, n + 1, remaining);
    const derived = await openBatchOfKey(db, parent.keyId);
    if (!derived || derived.parentId !== parent.id) return 'idle';
    return this.send(derived, await this.untilSlot(await this.waitForSlot(signal), signal), signal);
  }

  private async remainingTimes(batch: BatchRow, signal?: AbortSignal): Promise<number> {
    const beforeSend = await this.untilSlot(await this.waitForSlot(signal), signal);
    try {
      const res = await this.o.api.getUserServicePurchaseList(
        { openId: batch.openId, serviceId: batch.serviceId },
        { signal, beforeSend },
      );
      return res.purchaseInfoList
        .filter((p) => p.serviceModeId === batch.serviceModeId)
        .reduce((sum, p) => sum + (p.remainServiceTimes ?? 0), 0);
    } catch (err) {
      if (err instanceof DouyinError)
        throw new RetryableChargeError(err.kind, `reading remaining times: ${describe(err)}`);
      throw err;
    }
  }

  private async dead(batch: BatchRow, attempt: AttemptRecord | null, reason: string): Promise<ChargeOutcome> {
    await settleBatch(this.o.db, attempt, batch.id, { status: 'dead', reason });
    batchesTotal.inc({ outcome: 'dead' });
    this.o.logger.warn(
      { batchId: String(batch.id), outTradeNo: batch.outTradeNo, reason },
      'batch is dead; replay it with `npm run cli -- batches replay ID`',
    );
    return 'dead';
  }

  private attempt(
    batch: BatchRow,
    startedAt: Date,
    t0: number,
    r: {
      httpStatus: number | null;
      logid: string | null;
      description: string | null;
      errorCode?: number | null;
      subErrorCode?: number | null;
      errorKind?: ErrorKind;
    },
  ): AttemptRecord {
    return {
      batchId: batch.id,
      outTradeNo: batch.outTradeNo,
      count: batch.count,
      startedAt,
      durationMs: Math.round(performance.now() - t0),
      httpStatus: r.httpStatus,
      errorCode: r.errorCode ?? (r.errorKind ? null : 0),
      subErrorCode: r.subErrorCode ?? null,
      description: r.description,
      logid: r.logid,
      outcome: r.errorKind ? 'error' : 'success',
      errorKind: r.errorKind ?? null,
      workerId: this.o.workerId,
    };
  }
}

function describe(err: DouyinError): string {
  return `${err.kind}${err.errorCode !== undefined ? ` ${err.errorCode}` : ''}: ${err.description}${
    err.logid ? ` (logid ${err.logid})` : ''
  }`;
}
