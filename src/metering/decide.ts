// The charger's money decisions, as pure functions: a batch, Douyin's answer and
// the policy in; what the ledger must do out. No I/O here, so every rule can be
// read in one place and tested as a table (test/metering/decide.test.ts); the
// charger applies each decision with one ledger call (src/ledger/apply-decision.ts).
import type { ErrorKind } from '../douyin/errors.js';
import type { InsufficientPolicy } from './interfaces.js';

/** Why a batch went dead: the first word of its dead_reason, for filtering. */
export type DeadCode = 'deadline' | 'permanent_error' | 'idempotency_window' | 'derived_dead';

/** What the decisions need to know of a batch. */
export interface BatchFacts {
  /** A derived (partial policy) batch charges part of its parent's count. */
  isDerived: boolean;
  count: number;
  deadlineAt: Date;
  /** When its out_trade_no was first sent; null before the first attempt. */
  firstAttemptAt: Date | null;
}

export interface ChargePolicy {
  insufficient: InsufficientPolicy;
  /** Douyin's idempotency window (DOUYIN_IDEMPOTENCY_WINDOW_SEC). */
  idempotencyWindowSec: number;
}

/**
 * The share of Douyin's idempotency window after which a batch is never sent
 * again: the rest is margin for clocks and for a call already on its way.
 */
export const WINDOW_SAFE_FRACTION = 0.9;

/** The last moment a batch first sent at `firstAttemptAt` may be sent again. */
export function lastSafeSend(firstAttemptAt: Date, idempotencyWindowSec: number): Date {
  return new Date(firstAttemptAt.getTime() + idempotencyWindowSec * WINDOW_SAFE_FRACTION * 1000);
}

export type BeforeSend = { kind: 'send' } | { kind: 'dead'; code: DeadCode; reason: string };

/** Right before a call: may this batch be sent now? */
export function decideBeforeSend(b: BatchFacts, now: Date, policy: ChargePolicy): BeforeSend {
  if (b.firstAttemptAt && now >= lastSafeSend(b.firstAttemptAt, policy.idempotencyWindowSec)) {
    return {
      kind: 'dead',
      code: 'idempotency_window',
      reason: `first sent ${b.firstAttemptAt.toISOString()}, past ${WINDOW_SAFE_FRACTION * 100}% of Douyin's ${policy.idempotencyWindowSec} s idempotency window: a resend could deduct again; resolve it by hand`,
    };
  }
  if (now > b.deadlineAt) {
    return { kind: 'dead', code: 'deadline', reason: `retry deadline ${b.deadlineAt.toISOString()} passed` };
  }
  return { kind: 'send' };
}

/** Douyin's answer to one DecrUserRemainTimes call. */
export type Answer = { ok: true } | { ok: false; kind: ErrorKind; retryable: boolean; detail: string };

export type AfterCall =
  /** Deducted. A derived batch settles its parent as partial in the same step. */
  | { kind: 'charged' }
  /** Stays open; the run is retried with backoff under the same out_trade_no. */
  | { kind: 'retry'; rateLimited: boolean }
  /** Final. A derived batch takes its parent with it: the parent's uses are unsettled. */
  | { kind: 'dead'; code: DeadCode; reason: string }
  /** Reject policy: the user's balance is too low; final. */
  | { kind: 'insufficient' }
  /** Partial policy: this derived batch was refused (not deducted); the parent decides again. */
  | { kind: 'derived_refused' }
  /** Partial policy: the parent was refused; read the user's remaining times next. */
  | { kind: 'check_remaining' };

/** After a call: what its answer means for the batch. */
export function decideAfterCall(b: BatchFacts, answer: Answer, policy: ChargePolicy, now: Date): AfterCall {
  if (answer.ok) return { kind: 'charged' };
  if (answer.kind === 'insufficient_balance') {
    if (b.isDerived) return { kind: 'derived_refused' };
    return policy.insufficient === 'reject' ? { kind: 'insufficient' } : { kind: 'check_remaining' };
  }
  if (!answer.retryable) return { kind: 'dead', code: 'permanent_error', reason: answer.detail };
  if (now > b.deadlineAt) {
    return { kind: 'dead', code: 'deadline', reason: `retry deadline passed; last error ${answer.detail}` };
  }
  return { kind: 'retry', rateLimited: answer.kind === 'rate_limited' };
}

/** How many derived batches the partial policy tries before giving up on a parent. */
export const MAX_DERIVED = 3;

export type PartialStep =
  /** The balance covers the whole parent again: resend it (same out_trade_no). */
  | { kind: 'retry_full' }
  /** Deduct what is left under a new derived batch of this count. */
  | { kind: 'derive'; count: number }
  /** Nothing can be deducted: the parent is partial with all its uses overage. */
  | { kind: 'overage' };

/**
 * Partial policy, after the parent was refused: what to do with the user's
 * `remaining` times. A derived batch never asks for more than the parent's count,
 * so the uses deducted for a parent never exceed its uses.
 */
export function decidePartial(parentCount: number, remaining: number, derivedSoFar: number): PartialStep {
  if (derivedSoFar >= MAX_DERIVED || remaining <= 0) return { kind: 'overage' };
  if (remaining >= parentCount) return { kind: 'retry_full' };
  return { kind: 'derive', count: remaining };
}
