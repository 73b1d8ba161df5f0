import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_SCHEDULE, nextRetryDelayMs } from '../../src/notify/retry-schedule.js';

const s = DEFAULT_RETRY_SCHEDULE;
const H = 3_600_000;

describe('nextRetryDelayMs', () => {
  it.each([
    // failures, age, random, delay
    [1, 0, 0, 2_500],
    [1, 0, 1, 5_000],
    [2, 10_000, 1, 10_000],
    [3, 20_000, 0.5, 15_000],
    [11, H, 1, H], // 5 s × 2^10 = 85 min, capped at 1 h
    [40, 10 * H, 0, H / 2],
    [1000, 10 * H, 1, H], // no overflow however many failures
  ])('after %i failures at age %i ms (random %f): %i ms', (failures, age, random, delay) => {
    expect(nextRetryDelayMs(s, failures, age, () => random)).toBe(delay);
  });

  it('makes the last retry when the delivery is 3 days old, then gives up', () => {
    expect(nextRetryDelayMs(s, 80, 72 * H - 60_000, () => 1)).toBe(60_000);
    expect(nextRetryDelayMs(s, 81, 72 * H, () => 1)).toBeNull();
  });

  it('retries the first time within about 5 s and spreads retries (jitter)', () => {
    const delays = Array.from({ length: 200 }, () => nextRetryDelayMs(s, 1, 0)!);
    expect(Math.max(...delays)).toBeLessThanOrEqual(5_000);
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(2_500);
    expect(new Set(delays).size).toBeGreaterThan(50);
  });

  it('over 3 days makes a few dozen attempts, not thousands', () => {
    let age = 0;
    let attempts = 1;
    for (;;) {
      const d = nextRetryDelayMs(s, attempts, age, () => 0.5);
      if (d === null) break;
      age += d;
      attempts += 1;
    }
    expect(age).toBe(72 * H);
    expect(attempts).toBeGreaterThan(60);
    expect(attempts).toBeLessThan(120);
  });
});
