// Charges one batching key: makes (at most) one DecrUserRemainTimes call per run
// for the key's open batch, or for a new batch formed from its pending events.
//
// Exactly-once rests on four rules:
// 1. A batch's out_trade_no and count are stored durably before its first call,
//    and every retry, crash recovery and replay sends exactly those (Douyin
//    deduplicates), never once 90% of Douyin's idempotency window has passed.
// 2. A batch takes its key's events after the key's batched_seq, up to the ingest
//    horizon (no write in flight can add one there), and moves batched_seq in the
//    same statement, so no event is in two batches.
// 3. One run per key: BullMQ's deduplication and job lock, and behind them a lease
//    with a fencing token in PostgreSQL that every send and settlement shows, so a
//    run that lost its job lock cannot act on a key another run took over.
// 4. A key's open batch is always finished before a new one is formed.
//
// What each answer means is decided by the pure functions of decide.ts; this file
// does the I/O around them and applies each decision with one ledger call.
import { DouyinError, type ErrorKind } from '../douyin/errors.js';
import type { Slot } from '../douyin/rate-limiter.js';
import { type Applied, applyDecision, type LedgerStep } from '../ledger/apply-decision.js';
import { type AttemptRecord, storableText } from '../ledger/attempts.js';
import { type BatchRow, derivedBatchCount, openBatchById, openBatchOfKey } from '../ledger/batches.js';
import { ChargeRunStatements } from '../ledger/charge-run-statements.js';
import { claimBatchForSend, unstampUnsentBatch } from '../ledger/claim-batch.js';
import { type KeyLease, renewKeyLease } from '../ledger/key-lease.js';
import type { PendingAges } from '../ledger/keys.js';
import { batchesTotal, rateLimitedTotal, straySuccessTotal } from '../metrics.js';
import {
  type Answer,
  type ChargePolicy,
  decideAfterCall,
  decideBeforeSend,
  decidePartial,
  MAX_DERIVED,
} from './decide.js';
import { ChargingPausedError, LeaseBusyError, LeaseLostError, RetryableChargeError } from './errors.js';
import type { ChargerOptions } from './interfaces.js';
import { newOutTradeNo } from './out-trade-no.js';

/** How long before its call's slot a batch is formed (forming takes a query). */
const FORM_LEAD_MS = 150;

export type ChargeOutcome =
  | 'idle'
  | 'charged'
  | 'partial'
  | 'insufficient'
  | 'dead'
  /** This run lost its lease or its batch changed under it: it stopped without acting. */
  | 'stale'
  /** Charging is paused (an operator): nothing was sent; the key's batch, if formed, waits open. */
  | 'paused'
  /** The key's events are still arriving: its batch waits a little (see holdBackMs). */
  | 'held';

/** A lease that would run out within this of a call's timeout is renewed before the call leaves. */
const LEASE_MARGIN_MS = 500;

/** One run's hold on its key: the lease and when it was last renewed (performance.now()). */
interface Run {
  lease: KeyLease;
  renewedAt: number;
  /** The run's last statement ended the lease already. */
  released?: boolean;
}

export class Charger {
  private readonly policy: ChargePolicy;

  /** The run's common statements, shared with this charger's other runs in flight. */
  private readonly statements: ChargeRunStatements;

  constructor(private readonly o: ChargerOptions) {
    this.policy = { insufficient: o.insufficientPolicy, idempotencyWindowSec: o.idempotencyWindowSec };
    this.statements = new ChargeRunStatements(o.db, { owner: o.workerId, leaseMs: o.leaseMs });
  }

  /** One run for a key. Throws RetryableChargeError when the run should be retried later. */
  async chargeKey(keyId: number, signal?: AbortSignal): Promise<ChargeOutcome> {
    return (await this.chargeOrHold(keyId, signal)).outcome;
  }

  /** chargeKey, and for a held key how long until its hold ends (unless newer events come). */
  async chargeOrHold(
    keyId: number,
    signal?: AbortSignal,
  ): Promise<{ outcome: ChargeOutcome; holdMsLeft?: number }> {
    if (await this.paused()) return { outcome: 'paused' };
    // A run that would only find nothing to do, or wait, takes no lease and writes nothing.
    const probe = await this.statements.probe(keyId);
    if (!probe.openBatch && !probe.pending) return { outcome: 'idle' };
    const holdMsLeft = probe.openBatch ? 0 : this.holdMsLeft(probe.pending!);
    if (holdMsLeft > 0) return { outcome: 'held', holdMsLeft };
    return { outcome: await this.chargeLeased(keyId, signal) };
  }

  private async chargeLeased(keyId: number, signal?: AbortSignal): Promise<ChargeOutcome> {
    const t = performance.now();
    const work = await this.statements.takeLease(keyId);
    if (work.kind === 'busy') throw new LeaseBusyError(keyId);
    const run: Run = { lease: work.lease, renewedAt: t };
    try {
      if (!work.batch && !work.pending) return 'idle'; // charged by another run since the probe
      // The batch is formed (or claimed) just before the call's slot (FORM_LEAD_MS), not
      // before the wait, so it takes in everything that arrived while the key waited
      // its turn, and the query does not make the call late.
      const slot = await this.o.limiter.acquire(signal, FORM_LEAD_MS);
      const batch = work.batch ? await this.claim(run, work.batch) : await this.form(run);
      if (batch === 'idle' || batch === 'stale') return batch;
      return await this.send(run, batch, slot, signal, !work.batch);
    } finally {
      if (!run.released) await this.statements.release(run.lease).catch(() => {}); // else it expires by itself
    }
  }

  /** Whether charging is paused; when that cannot be known (Redis unreachable), it is taken as paused: no call. */
  private async paused(): Promise<boolean> {
    if (!this.o.isPaused) return false;
    try {
      return await this.o.isPaused();
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'could not read the pause flag; not sending');
      return true;
    }
  }

  /** Whether the key has events in no batch (after a run, whether it needs another). */
  hasPendingEvents(keyId: number): Promise<boolean> {
    return this.statements.hasPendingEvents(keyId);
  }

  /**
   * How much longer the key's first batch waits (0 or less: it need not). A key
   * whose events are still arriving (the newest came within half a batching window)
   * waits before its batch is formed, so that a burst costs one call, not two, and
   * the deployment's call slots go further; never once its oldest pending event has
   * waited holdBackMs.
   */
  private holdMsLeft(pending: PendingAges): number {
    return Math.min(
      this.o.windowMs / 2 - pending.newestAgeMs,
      (this.o.holdBackMs ?? 0) - pending.oldestAgeMs,
    );
  }

  /** Forms the key's next batch; its first attempt is stamped as it is formed. */
  private async form(run: Run): Promise<BatchRow | 'idle' | 'stale'> {
    const t = performance.now();
    const formed = await this.statements.form({
      keyId: run.lease.keyId,
      outTradeNo: newOutTradeNo(),
      maxEvents: this.o.maxEvents,
      maxCount: this.o.maxCount,
      deadlineSec: this.o.deadlineSec,
      lease: run.lease,
    });
    if (!formed.leased) return 'stale';
    run.renewedAt = t;
    return formed.batch ?? 'idle'; // the slot goes unused; slots are never handed back
  }

  /** The last check before an existing batch is sent again; stamps its first attempt. */
  private async claim(run: Run, batch: BatchRow): Promise<BatchRow | 'stale'> {
    const t = performance.now();
    const claim = await claimBatchForSend(this.o.db, run.lease, batch.id);
    if (claim.kind !== 'claimed') return this.stale(batch, claim.kind);
    run.renewedAt = t;
    return { ...batch, firstAttemptAt: claim.firstAttemptAt };
  }

  private async send(
    run: Run,
    batch: BatchRow,
    slot: Slot,
    signal?: AbortSignal,
    /** This run formed the batch (no earlier run can have sent it). */
    formedNow = false,
  ): Promise<ChargeOutcome> {
    const facts = batchFacts(batch);
    const pre = decideBeforeSend(facts, new Date(), this.policy);
    if (pre.kind === 'dead') return this.dead(run, batch, null, `${pre.code}: ${pre.reason}`);
    const onTime = await this.o.limiter.until(slot, signal);
    let leaseLost = false;
    // Right before the request leaves (again after a token refresh): on time for the
    // rate limit, and with enough lease left that no other run can take the key
    // over while this call is out.
    let pausedBeforeSend = false;
    /** Requests let out so far (a token refresh sends a second one). */
    let letOut = 0;
    const beforeSend = async (s?: AbortSignal) => {
      await onTime(s);
      const callTimeoutMs = this.o.callTimeoutMs ?? 10_000;
      if (performance.now() + callTimeoutMs + LEASE_MARGIN_MS > run.renewedAt + run.lease.leaseMs) {
        const t = performance.now();
        if (!(await renewKeyLease(this.o.db, run.lease))) {
          leaseLost = true;
          throw new LeaseLostError(run.lease.keyId);
        }
        run.renewedAt = t;
      }
      // The last thing before the request leaves: a pause answered before this point stops it.
      if (await this.paused()) {
        pausedBeforeSend = true;
        throw new ChargingPausedError();
      }
      letOut += 1;
    };

    const startedAt = new Date();
    const t0 = performance.now();
    let answer: Answer;
    let attempt: AttemptRecord;
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
      answer = { ok: true };
      attempt = this.attempt(batch, startedAt, t0, {
        httpStatus: res.httpStatus,
        logid: res.logid,
        description: res.description || null,
      });
    } catch (err) {
      if (leaseLost) return this.stale(batch, 'lease_lost'); // nothing was sent
      if (pausedBeforeSend) {
        // Nothing was sent; the batch waits open. A batch this run formed and never let
        // out loses its first-attempt stamp, so a long pause does not eat into
        // Douyin's idempotency window (the real first send stamps it again).
        if (formedNow && letOut === 0) await unstampUnsentBatch(this.o.db, run.lease, batch.id);
        return 'paused';
      }
      if (!(err instanceof DouyinError)) throw err; // a bug or the database: BullMQ retries the run
      answer = { ok: false, kind: err.kind, retryable: err.retryable, detail: describe(err) };
      attempt = this.attempt(batch, startedAt, t0, {
        httpStatus: err.httpStatus ?? null,
        logid: err.logid ?? null,
        description: err.description,
        errorCode: err.errorCode ?? null,
        subErrorCode: err.subErrorCode ?? null,
        errorKind: err.kind,
      });
    }

    const decision = decideAfterCall(facts, answer, this.policy, new Date());
    switch (decision.kind) {
      case 'charged': {
        if (!(await this.apply(run, batch, attempt, { kind: 'charged' }, true))) return 'stale';
        const outcome = batch.parentId === null ? 'charged' : 'partial';
        batchesTotal.inc({ outcome });
        return outcome;
      }
      case 'retry': {
        if (decision.rateLimited) {
          rateLimitedTotal.inc();
          await this.o.limiter.penalize(this.o.rateLimitPenaltyMs ?? 1_000);
        }
        if (!(await this.apply(run, batch, attempt, { kind: 'record_attempt' }, true))) return 'stale';
        this.o.logger.debug(
          { batchId: String(batch.id), kind: attempt.errorKind, logid: attempt.logid },
          'charge call failed; will retry',
        );
        throw new RetryableChargeError(answer.ok ? 'transient' : answer.kind, answer.ok ? '' : answer.detail);
      }
      case 'dead':
        return this.dead(run, batch, attempt, `${decision.code}: ${decision.reason}`);
      case 'insufficient':
        if (!(await this.apply(run, batch, attempt, { kind: 'insufficient' }))) return 'stale';
        batchesTotal.inc({ outcome: 'insufficient' });
        return 'insufficient';
      case 'derived_refused': {
        // Not deducted; the parent decides again with what the user has now.
        if (!(await this.apply(run, batch, attempt, { kind: 'insufficient' }))) return 'stale';
        const parent = await openBatchById(this.o.db, batch.parentId!);
        if (!parent) return this.stale(batch, 'parent_not_open');
        return this.partial(run, parent, signal);
      }
      case 'check_remaining':
        if (!(await this.apply(run, batch, attempt, { kind: 'record_attempt' }))) return 'stale';
        return this.partial(run, batch, signal);
    }
  }

  /** Partial policy, after the parent was refused: deduct what the user has left, under a derived batch. */
  private async partial(run: Run, parent: BatchRow, signal?: AbortSignal): Promise<ChargeOutcome> {
    const n = await derivedBatchCount(this.o.db, parent.id);
    const remaining = n >= MAX_DERIVED ? 0 : await this.remainingTimes(parent, signal);
    const step = decidePartial(parent.count, remaining, n);
    if (step.kind === 'retry_full') {
      // The balance was topped up meanwhile: send the parent again, same out_trade_no.
      throw new RetryableChargeError('transient', 'balance now sufficient; retrying the full batch');
    }
    if (step.kind === 'overage') {
      if (!(await this.apply(run, parent, null, { kind: 'overage' }))) return 'stale';
      batchesTotal.inc({ outcome: 'partial' });
      return 'partial';
    }
    // A different count needs a new out_trade_no: the derived batch's own.
    if (!(await this.apply(run, parent, null, { kind: 'derive', n: n + 1, count: step.count })))
      return 'stale';
    const derived = await openBatchOfKey(this.o.db, parent.keyId);
    if (!derived || derived.parentId !== parent.id) return this.stale(parent, 'derived_not_found');
    const slot = await this.o.limiter.acquire(signal, FORM_LEAD_MS);
    const claimed = await this.claim(run, derived);
    if (claimed === 'stale') return claimed;
    return this.send(run, claimed, slot, signal);
  }

  private async remainingTimes(batch: BatchRow, signal?: AbortSignal): Promise<number> {
    const beforeSend = await this.o.limiter.until(await this.o.limiter.acquire(signal), signal);
    try {
      const res = await this.o.api.getUserServicePurchaseList(
        { openId: batch.openId, serviceId: batch.serviceId, isTestEnv: batch.isTestEnv },
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

  private async dead(
    run: Run,
    batch: BatchRow,
    attempt: AttemptRecord | null,
    reason: string,
  ): Promise<ChargeOutcome> {
    if (!(await this.apply(run, batch, attempt, { kind: 'dead', reason }))) return 'stale';
    batchesTotal.inc({ outcome: 'dead' });
    this.o.logger.warn(
      { batchId: String(batch.id), outTradeNo: batch.outTradeNo, reason },
      'batch is dead; see `npm run cli -- batches replay|resolve ID`',
    );
    return 'dead';
  }

  /** Applies a ledger step; false (and logged) when this run may no longer change the batch. */
  private async apply(
    run: Run,
    batch: BatchRow,
    attempt: AttemptRecord | null,
    step: LedgerStep,
    /** The run ends with this step (it returns or throws right after). */
    endsRun = false,
  ): Promise<boolean> {
    const t = performance.now();
    const r: Applied = await applyDecision(this.o.db, run.lease, batch, attempt, step, {
      endsRun,
      common: this.statements.applyCommon,
    });
    if (r.applied) {
      run.renewedAt = t;
      run.released = r.released;
      return true;
    }
    if (attempt?.outcome === 'success') {
      straySuccessTotal.inc();
      this.o.logger.error(
        { batchId: String(batch.id), outTradeNo: batch.outTradeNo, why: r.why, logid: attempt.logid },
        'success answer for a batch this run no longer owns; recorded with an alert',
      );
    } else this.stale(batch, r.why);
    return false;
  }

  private stale(batch: BatchRow, why: string): 'stale' {
    this.o.logger.warn({ batchId: String(batch.id), why }, 'charge run is stale; it stops here');
    return 'stale';
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
      // Stored as given on every path; the ledger cannot hold some of what a body may carry.
      description: storableText(r.description),
      logid: storableText(r.logid),
      outcome: r.errorKind ? 'error' : 'success',
      errorKind: r.errorKind ?? null,
      workerId: this.o.workerId,
    };
  }
}

function batchFacts(b: BatchRow) {
  return {
    isDerived: b.parentId !== null,
    count: b.count,
    deadlineAt: b.deadlineAt,
    firstAttemptAt: b.firstAttemptAt,
  };
}

/** The error in words, storable as a batch's last error or dead reason. */
function describe(err: DouyinError): string {
  return storableText(
    `${err.kind}${err.errorCode !== undefined ? ` ${err.errorCode}` : ''}: ${err.description}${
      err.logid ? ` (logid ${err.logid})` : ''
    }`,
  )!;
}
