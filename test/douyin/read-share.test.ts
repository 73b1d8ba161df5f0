// Reads never starve charging: all of the deployment's purchase-list reads together
// take at most DOUYIN_READ_QPS_SHARE of DOUYIN_QPS (src/douyin/client.ts,
// douyinReadLimiter), while deductions keep the whole QPS.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createDouyinClientFromConfig } from '../../src/douyin/index.js';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { redisUrl, uniquePrefix } from '../support/services.js';

let sim: RunningSimulator;
let redis: Redis;
beforeAll(async () => {
  sim = await startSimulator();
  redis = new Redis(redisUrl());
});
afterAll(async () => {
  await sim.close();
  redis.disconnect();
});

const clientWith = (share: string) =>
  createDouyinClientFromConfig(
    loadConfig(['douyin'], {
      DOUYIN_BASE_URL: sim.url,
      DOUYIN_CLIENT_KEY: 'sim-client-key',
      DOUYIN_CLIENT_SECRET: 'sim-client-secret',
      DOUYIN_QPS: '50',
      DOUYIN_READ_QPS_SHARE: share,
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: uniquePrefix(`reads-${share}`),
    }),
    redis,
  );

async function timed(work: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await work();
  return performance.now() - t0;
}

describe('the reads’ share of the QPS', () => {
  it('paces reads at their share while deductions go at the full rate', async () => {
    sim.setBalance({ openId: 'u-reads', serviceId: 's1', serviceModeId: 'm1', remaining: 1_000 });
    const client = clientWith('0.2'); // reads: 10 a second of the 50
    try {
      const read = () => client.getUserServicePurchaseList({ openId: 'u-reads', serviceId: 's1' });
      const decr = (i: number) =>
        client.decrUserRemainTimes({
          openId: 'u-reads',
          serviceId: 's1',
          serviceModeId: 'm1',
          count: 1,
          outTradeNo: `RS-${Date.now()}-${i}`,
        });
      await read(); // token fetched, first slots taken
      const reads = await timed(() => Promise.all(Array.from({ length: 11 }, read)));
      const decrs = await timed(() => Promise.all(Array.from({ length: 11 }, (_, i) => decr(i))));
      // 11 reads at 10 per 1.08 s: the last leaves ~1.2 s after the first; 11 deductions at 50 per second take ~0.24 s.
      expect(reads).toBeGreaterThan(900);
      expect(decrs).toBeLessThan(reads / 2);
    } finally {
      await client.close();
    }
  });

  it('with a share of 1, reads go at the full rate (the same reads take less than half as long)', async () => {
    const paced = clientWith('0.2');
    const full = clientWith('1');
    try {
      const run = async (c: typeof paced) => {
        const read = () => c.getUserServicePurchaseList({ openId: 'u-reads', serviceId: 's1' });
        await read();
        return timed(() => Promise.all(Array.from({ length: 11 }, read)));
      };
      const slow = await run(paced);
      expect(await run(full)).toBeLessThan(slow / 2);
    } finally {
      await paced.close();
      await full.close();
    }
  });
});
