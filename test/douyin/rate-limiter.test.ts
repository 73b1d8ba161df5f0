// The deployment-wide rate limiter against a real Redis: slots are spaced, and a
// caller that wakes up late for its slot (a stuck event loop) takes a new one
// instead of bunching with the calls slotted after it.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RateLimiter, type Slot } from '../../src/douyin/rate-limiter.js';
import { redisUrl, uniquePrefix } from '../support/services.js';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(redisUrl());
});
afterAll(() => redis.disconnect());

const redisNowUs = async () => {
  const [s, us] = await redis.time();
  return Number(s) * 1_000_000 + Number(us);
};
const stall = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until) {} // keeps the event loop from running anything
};

describe('RateLimiter', () => {
  it('spaces slots by (1000 ms + tolerance) / (qps - 1)', async () => {
    const limiter = new RateLimiter({ redis, key: uniquePrefix('rl'), qps: 11, jitterToleranceMs: 0 });
    const slots: Slot[] = [];
    for (let i = 0; i < 4; i++) slots.push(await limiter.acquire());
    const gaps = slots.slice(1).map((s, i) => s.at - slots[i]!.at);
    // 1000 / 10 = 100 ms apart in Redis; each slot's `at` is translated to this
    // process's clock through one round trip, so a loaded machine adds a few ms of
    // error either way; the span from the first to the last (300 ms) carries the
    // error of two translations only.
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(85);
    expect(slots[3]!.at - slots[0]!.at).toBeGreaterThanOrEqual(290);
  });

  it('an on-time caller keeps its slot; a caller stuck past its slot takes a new one', async () => {
    const onTimeKey = uniquePrefix('rl');
    const t0 = await redisNowUs();
    await new RateLimiter({ redis, key: onTimeKey, qps: 10 }).acquire();
    const onTimeTat = Number(await redis.get(onTimeKey)) - t0;
    expect(onTimeTat).toBeLessThan(200_000); // one interval (120 ms) after now

    const lateKey = uniquePrefix('rl');
    const t1 = await redisNowUs();
    const pending = new RateLimiter({ redis, key: lateKey, qps: 10 }).acquire();
    stall(150); // the answer arrives, but the caller only sees it 150 ms later
    const slot = await pending;
    const lateTat = Number(await redis.get(lateKey)) - t1;
    // It reserved again after the stall: the next free slot is ~150 ms + one interval away.
    expect(lateTat).toBeGreaterThan(250_000);
    expect(performance.now() - slot.at).toBeLessThan(100);
  });
});
