// When a failed delivery is tried again: exponential backoff with jitter, the
// first retry within about 5 s, then doubling up to an hour, until the delivery
// is given up (3 days after it was made, by default). Pure, so it is tested as a table.

export interface RetrySchedule {
  /** The first retry's delay before jitter (NOTIFY_RETRY_BASE_MS, default 5000). */
  baseMs: number;
  /** No delay grows past this. Default 1 h. */
  maxMs: number;
  /** A delivery still failing this long after it was made is given up (NOTIFY_GIVE_UP_AFTER_SEC). */
  giveUpAfterMs: number;
}

export const DEFAULT_RETRY_SCHEDULE: RetrySchedule = {
  baseMs: 5_000,
  maxMs: 3_600_000,
  giveUpAfterMs: 3 * 86_400_000,
};

/**
 * The delay after the `failures`-th failed attempt (1 = the first), or null when
 * the delivery is given up (it is `giveUpAfterMs` old). "Equal jitter": half the delay fixed, half
 * random, so retries of many deliveries that failed together spread out.
 */
export function nextRetryDelayMs(
  s: RetrySchedule,
  failures: number,
  ageMs: number,
  random: () => number = Math.random,
): number | null {
  if (ageMs >= s.giveUpAfterMs) return null;
  const ceiling = Math.min(s.maxMs, s.baseMs * 2 ** Math.min(failures - 1, 40));
  const delay = Math.round(ceiling / 2 + random() * (ceiling / 2));
  // The last retry is made when the delivery is given up, not skipped.
  return Math.min(delay, s.giveUpAfterMs - ageMs);
}
