// The charger's money decisions as a table: batch + Douyin's answer + policy -> outcome.
import { describe, expect, it } from 'vitest';
import {
  type Answer,
  type BatchFacts,
  type ChargePolicy,
  decideAfterCall,
  decideBeforeSend,
  decidePartial,
  lastSafeSend,
  MAX_DERIVED,
} from '../../src/metering/decide.js';

const DAY = 86_400_000;
const now = new Date('2026-11-30T12:00:00Z');
const month = 2_592_000;
const reject: ChargePolicy = { insufficient: 'reject', idempotencyWindowSec: month };
const partial: ChargePolicy = { insufficient: 'partial', idempotencyWindowSec: month };
const batch = (o: Partial<BatchFacts> = {}): BatchFacts => ({
  isDerived: false,
  count: 8,
  deadlineAt: new Date(now.getTime() + DAY),
  firstAttemptAt: new Date(now.getTime() - 60_000),
  ...o,
});
const ok: Answer = { ok: true };
const fail = (kind: Exclude<Answer, { ok: true }>['kind'], retryable: boolean): Answer => ({
  ok: false,
  kind,
  retryable,
  detail: `${kind} detail`,
});

describe('before a call', () => {
  it.each([
    ['a batch never sent is sent', batch({ firstAttemptAt: null }), 'send', undefined],
    ['a batch first sent a minute ago is sent', batch(), 'send', undefined],
    [
      'a batch first sent 26 days ago is sent (inside 90% of 30 days)',
      batch({ firstAttemptAt: new Date(now.getTime() - 26 * DAY) }),
      'send',
      undefined,
    ],
    [
      'a batch first sent 27 days ago is dead: past 90% of the window',
      batch({ firstAttemptAt: new Date(now.getTime() - 27 * DAY) }),
      'dead',
      'idempotency_window',
    ],
    [
      'the window wins over the deadline when both have passed',
      batch({ firstAttemptAt: new Date(now.getTime() - 40 * DAY), deadlineAt: new Date(now.getTime() - 1) }),
      'dead',
      'idempotency_window',
    ],
    [
      'a batch past its deadline is dead',
      batch({ deadlineAt: new Date(now.getTime() - 1) }),
      'dead',
      'deadline',
    ],
  ])('%s', (_name, b, kind, code) => {
    const d = decideBeforeSend(b, now, reject);
    expect(d.kind).toBe(kind);
    if (d.kind === 'dead') expect(d.code).toBe(code);
  });

  it('the last safe send is 90% of the window after the first attempt', () => {
    expect(lastSafeSend(new Date(0), 1_000).getTime()).toBe(900_000);
  });
});

describe('after a call', () => {
  it.each([
    ['a success charges the batch', batch(), ok, reject, { kind: 'charged' }],
    ['a success charges a derived batch', batch({ isDerived: true }), ok, partial, { kind: 'charged' }],
    [
      'a transient error retries',
      batch(),
      fail('transient', true),
      reject,
      { kind: 'retry', rateLimited: false },
    ],
    [
      'a rate-limited answer retries, marked so the limiter is pushed back',
      batch(),
      fail('rate_limited', true),
      reject,
      { kind: 'retry', rateLimited: true },
    ],
    [
      'a timeout past the deadline is dead',
      batch({ deadlineAt: new Date(now.getTime() - 1) }),
      fail('timeout', true),
      reject,
      { kind: 'dead', code: 'deadline' },
    ],
    [
      'a permanent error is dead',
      batch(),
      fail('invalid_request', false),
      reject,
      { kind: 'dead', code: 'permanent_error' },
    ],
    [
      'a permanent error on a derived batch is dead (its parent goes with it)',
      batch({ isDerived: true }),
      fail('invalid_request', false),
      partial,
      { kind: 'dead', code: 'permanent_error' },
    ],
    [
      'insufficient under the reject policy is final',
      batch(),
      fail('insufficient_balance', false),
      reject,
      { kind: 'insufficient' },
    ],
    [
      'insufficient under the partial policy reads the remaining times next',
      batch(),
      fail('insufficient_balance', false),
      partial,
      { kind: 'check_remaining' },
    ],
    [
      'a refused derived batch hands the decision back to its parent',
      batch({ isDerived: true }),
      fail('insufficient_balance', false),
      partial,
      { kind: 'derived_refused' },
    ],
  ])('%s', (_name, b, answer, policy, expected) => {
    expect(decideAfterCall(b, answer, policy, now)).toMatchObject(expected);
  });
});

describe('partial policy, after the parent was refused', () => {
  it.each([
    ['none remaining: every use is overage', 8, 0, 0, { kind: 'overage' }],
    ['some remaining: a derived batch for exactly what is left', 8, 5, 0, { kind: 'derive', count: 5 }],
    ['enough remaining (topped up): the full parent again', 8, 8, 1, { kind: 'retry_full' }],
    ['more than enough remaining: the full parent again', 8, 100, 0, { kind: 'retry_full' }],
    ['the derived-batch cap reached: overage', 8, 5, MAX_DERIVED, { kind: 'overage' }],
  ])('%s', (_name, count, remaining, derivedSoFar, expected) => {
    expect(decidePartial(count, remaining, derivedSoFar)).toEqual(expected);
  });

  it('never asks a derived batch for more than its parent', () => {
    for (let remaining = 0; remaining < 20; remaining++) {
      const step = decidePartial(8, remaining, 0);
      if (step.kind === 'derive') expect(step.count).toBeLessThan(8);
    }
  });
});
