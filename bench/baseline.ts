// The naive baseline a benchmark reports next to its figures: one DecrUserRemainTimes
// per event, through the project's own client and the deployment-wide rate limiter,
// against the same simulator settings. Shared by bench/bench.ts and bench/scale.ts.
// The caller resets the simulator and funds the users first.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { DouyinMarketClient } from '../src/douyin/index.js';
import { RateLimiter } from '../src/douyin/rate-limiter.js';
import type { UsageEventInput } from '../src/events/schema.js';

export interface BaselineOptions {
  simUrl: string;
  redis: Redis;
  /** Redis prefix of the baseline's token cache and limiter, apart from the pipeline's. */
  prefix: string;
  qps: number;
  events: UsageEventInput[];
  clientKey?: string;
  clientSecret?: string;
  /** Calls in flight at once. Default 64. */
  concurrency?: number;
}

/** Events/s charged one call per event. */
export async function measureNaiveBaseline(o: BaselineOptions): Promise<number> {
  const client = new DouyinMarketClient({
    baseUrl: o.simUrl,
    clientKey: o.clientKey ?? 'sim-client-key',
    clientSecret: o.clientSecret ?? 'sim-client-secret',
    redis: o.redis,
    redisPrefix: o.prefix,
  });
  const limiter = new RateLimiter({ redis: o.redis, key: `${o.prefix}:rl`, qps: o.qps });
  let next = 0;
  const t = performance.now();
  try {
    await Promise.all(
      Array.from({ length: o.concurrency ?? 64 }, async () => {
        while (next < o.events.length) {
          const e = o.events[next++]!;
          for (;;) {
            await limiter.acquire(); // a retry takes a slot too
            try {
              await client.decrUserRemainTimes({ ...e, outTradeNo: `base-${e.eventId}`, isTestEnv: false });
              break;
            } catch {
              await sleep(50);
            }
          }
        }
      }),
    );
  } finally {
    await client.close();
  }
  return Math.round(o.events.length / ((performance.now() - t) / 1000));
}
