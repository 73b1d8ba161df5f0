import { RetryableChargeError } from './errors.js';

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/**
 * Exponential backoff with full jitter ("meter" backoff type of both queues):
 * a random delay in [0.5, 1] × min(max, base × 2^(attempt-1)). A rate-limited call
 * retries soon: the shared limiter has already pushed every caller back.
 */
export function meterBackoff(o: BackoffOptions) {
  return (attemptsMade: number, _type?: string, err?: Error): number => {
    if (err instanceof RetryableChargeError && err.kind === 'rate_limited') return 50 + Math.random() * 200;
    const exp = Math.min(o.maxMs, o.baseMs * 2 ** Math.max(0, Math.min(attemptsMade - 1, 30)));
    return Math.round(exp * (0.5 + Math.random() * 0.5));
  };
}
