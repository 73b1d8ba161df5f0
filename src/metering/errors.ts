import type { ErrorKind } from '../douyin/errors.js';

/** A call failed transiently; the charge job is retried with backoff (same out_trade_no). */
export class RetryableChargeError extends Error {
  override name = 'RetryableChargeError';
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Another run holds the key's lease (it is still running, or died less than a
 * lease ago): this run does nothing and BullMQ retries it with backoff.
 */
export class LeaseBusyError extends RetryableChargeError {
  override name = 'LeaseBusyError';
  constructor(readonly keyId: number) {
    super('transient', `key ${keyId} is leased by another charge run`);
  }
}

/** Charging was paused before the run's request left: nothing was sent. */
export class ChargingPausedError extends Error {
  override name = 'ChargingPausedError';
  constructor() {
    super('charging is paused');
  }
}

/** The run's lease ran out and another run took the key over before a call could leave. */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
  constructor(readonly keyId: number) {
    super(`the charge run lost its lease on key ${keyId} before sending`);
  }
}
