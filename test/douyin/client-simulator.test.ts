// The client against the project's simulator (src/simulator): an expired token is
// refreshed transparently, and a deduction that was applied but whose answer was
// lost is a 'network' error whose replay with the same out_trade_no charges once.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createDouyinClientFromConfig, DouyinError, DouyinMarketClient } from '../../src/douyin/index.js';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { redisUrl, uniquePrefix } from '../support/services.js';

let sim: RunningSimulator;
let redis: Redis;
let client: DouyinMarketClient;

const key = { openId: 'sim-u1', serviceId: 'sim-s1', serviceModeId: 'sim-m1' };

beforeAll(async () => {
  sim = await startSimulator();
  redis = new Redis(redisUrl());
  client = new DouyinMarketClient({
    baseUrl: sim.url,
    clientKey: 'sim-client-key',
    clientSecret: 'sim-client-secret',
    redis,
    redisPrefix: uniquePrefix('clsim'),
    timeoutMs: 5_000,
  });
});

afterAll(async () => {
  await client.close();
  redis.disconnect();
  await sim.close();
});

beforeEach(() => {
  sim.reset();
  sim.setBalance({ ...key, remaining: 100 });
});

describe('DouyinMarketClient against the simulator', () => {
  it('an expired token is refreshed and the call succeeds', async () => {
    await client.decrUserRemainTimes({ ...key, count: 1, outTradeNo: 'exp-1' });
    const issuedBefore = sim.state().tokensIssued;
    sim.expireTokens();
    const res = await client.decrUserRemainTimes({ ...key, count: 2, outTradeNo: 'exp-2' });
    expect(res.errorCode).toBe(0);
    expect(res.logid).not.toBe('');
    expect(sim.state().tokensIssued).toBe(issuedBefore + 1);
    expect(sim.state().balances.find((b) => b.openId === key.openId)?.remaining).toBe(97);
  });

  it('applied but lost: network error, then the same out_trade_no replayed deducts exactly once', async () => {
    sim.setFaults({ appliedButLostRate: 1 });
    const err = await client
      .decrUserRemainTimes({ ...key, count: 10, outTradeNo: 'lost-1' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DouyinError);
    expect(err).toMatchObject({ kind: 'network', retryable: true });

    sim.setFaults({ appliedButLostRate: 0 });
    const res = await client.decrUserRemainTimes({ ...key, count: 10, outTradeNo: 'lost-1' });
    expect(res.errorCode).toBe(0);

    const state = sim.state();
    expect(state.trades.filter((t) => t.outTradeNo === 'lost-1')).toHaveLength(1);
    expect(state.balances.find((b) => b.openId === key.openId)).toMatchObject({
      remaining: 90,
      deducted: 10,
    });
    expect(state.calls.replays).toBe(1);

    const list = await client.getUserServicePurchaseList({ openId: key.openId, serviceId: key.serviceId });
    expect(list.purchaseInfoList.find((p) => p.serviceModeId === key.serviceModeId)?.remainServiceTimes).toBe(
      90,
    );
  });

  it('insufficient balance and an out_trade_no conflict are classified', async () => {
    await expect(
      client.decrUserRemainTimes({ ...key, count: 1_000, outTradeNo: 'big-1' }),
    ).rejects.toMatchObject({
      kind: 'insufficient_balance',
      errorCode: 2119001,
    });
    await client.decrUserRemainTimes({ ...key, count: 1, outTradeNo: 'c-1' });
    await expect(client.decrUserRemainTimes({ ...key, count: 2, outTradeNo: 'c-1' })).rejects.toMatchObject({
      kind: 'conflict',
      errorCode: 2119002,
    });
  });

  it('a client made from the configuration paces every call on the shared limiter (DOUYIN_QPS)', async () => {
    sim.setFaults({ qps: 10 });
    const burst = (c: DouyinMarketClient) =>
      Promise.allSettled(
        Array.from({ length: 25 }, () =>
          c.decrUserRemainTimes({ ...key, count: 1, outTradeNo: `pace-${Math.random()}` }),
        ),
      );
    const kinds = (results: PromiseSettledResult<unknown>[]) =>
      results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as DouyinError).kind));

    // Baseline: a bare client sends the burst at once and the platform refuses most of it.
    const bare = kinds(await burst(client));
    expect(bare.filter((k) => k === 'rate_limited').length).toBeGreaterThan(0);

    await sleep(1_100); // the simulator's window empties
    const config = loadConfig(['douyin'], {
      DOUYIN_BASE_URL: sim.url,
      DOUYIN_CLIENT_KEY: 'sim-client-key',
      DOUYIN_CLIENT_SECRET: 'sim-client-secret',
      DOUYIN_QPS: '10',
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: uniquePrefix('clqps'),
    });
    const waits: number[] = [];
    const paced = createDouyinClientFromConfig(config, redis, {
      onRateLimitSlot: (s) => waits.push(s.waitedMs),
    });
    try {
      const t0 = performance.now();
      const results = kinds(await burst(paced));
      expect(results).toEqual(Array(25).fill('ok'));
      // 25 calls at 10 per 1.08 s: the last one cannot leave before ~2.6 s.
      expect(performance.now() - t0).toBeGreaterThan(2_400);
      expect(await redis.exists(`${config.REDIS_PREFIX}:douyin:ratelimit`)).toBe(1);
      // One slot per call, reported to the hook (metrics); the last ones waited their turn.
      expect(waits).toHaveLength(25);
      expect(Math.max(...waits)).toBeGreaterThan(2_000);
    } finally {
      await paced.close();
    }
  });
});
