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
