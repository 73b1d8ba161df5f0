// GET /v1/users/:openId/balance (src/balances/balance.ts): Douyin's remaining times
// from a snapshot (purchase list or order webhook), less what the meter charged
// since and what it has not charged yet; before and after charging, cached or read.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DouyinMarketClient } from '../../src/douyin/index.js';
import { BalanceRequestError, createBalanceClient } from '../../src/index.js';
import { formBatch, settleBatch } from '../../src/ledger/batches.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { chargePending, simulatorClient } from '../support/douyin.js';
import { addEvents as addLedgerEvents, addOrder } from '../support/ledger.js';
import { redisUrl } from '../support/services.js';
import { API_KEY, repoRoot, startTestServer, type TestServer } from './helpers.js';

let sim: RunningSimulator;
let client: DouyinMarketClient;
let douyinRedis: Redis;
let s: TestServer;
let fresh: TestServer; // every uncached balance reads Douyin (max age 0)
beforeAll(async () => {
  sim = await startSimulator();
  douyinRedis = new Redis(redisUrl());
  client = simulatorClient(sim, douyinRedis, 'balance-douyin');
  s = await startTestServer({ label: 'balance', douyin: client, balanceMaxAgeSec: 300 });
  fresh = await startTestServer({
    label: 'balance_fresh',
    databaseUrl: s.databaseUrl,
    douyin: client,
    balanceMaxAgeSec: 0,
  });
});
afterAll(async () => {
  await fresh?.close();
  await s?.close();
  await client?.close();
  await sim?.close();
  douyinRedis?.disconnect();
});

const balance = (server: TestServer, openId: string, query = '', auth = `Bearer ${API_KEY}`) =>
  fetch(`${server.url}/v1/users/${openId}/balance?serviceId=s1&serviceModeId=m1${query}`, {
    headers: { authorization: auth },
  });
const balanceJson = async (server: TestServer, openId: string, query = '') => {
  const res = await balance(server, openId, query);
  expect(res.status).toBe(200);
  return res.json();
};

async function addEvents(openId: string, counts: number[]): Promise<number> {
  const ids = await upsertKeys(s.db, [{ openId, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false }]);
  const keyId = [...ids.values()][0]!;
  await addLedgerEvents(s.db, keyId, counts, openId);
  return keyId;
}

const charge = (openId: string, keyId: number) =>
  chargePending(s.db, client, { id: keyId, openId, serviceId: 's1', serviceModeId: 'm1' });

describe('GET /v1/users/:openId/balance', () => {
  it('reads the purchase list when it knows nothing, then subtracts pending and charged uses', async () => {
    sim.setBalance({ openId: 'u-bal', serviceId: 's1', serviceModeId: 'm1', remaining: 20 });
    const first = await balanceJson(s, 'u-bal');
    expect(first).toMatchObject({
      openId: 'u-bal',
      serviceId: 's1',
      serviceModeId: 'm1',
      isTestEnv: false,
      douyinRemaining: 20,
      source: 'purchase_list',
      chargedSince: 0,
      pendingUses: 0,
      available: 20,
    });

    const keyId = await addEvents('u-bal', [1, 2]);
    expect(await balanceJson(s, 'u-bal')).toMatchObject({
      douyinRemaining: 20,
      pendingUses: 3,
      available: 17,
    });
    // Charged: Douyin now says 17, the snapshot (still fresh) says 20, the ledger says 3 since.
    expect(await charge('u-bal', keyId)).toBe(3);
    expect(await balanceJson(s, 'u-bal')).toMatchObject({
      douyinRemaining: 20,
      asOf: first.asOf,
      chargedSince: 3,
      pendingUses: 0,
      available: 17,
    });
    // A fresh read: Douyin's 17, nothing charged since.
    const read = await balanceJson(fresh, 'u-bal');
    expect(read).toMatchObject({
      douyinRemaining: 17,
      source: 'purchase_list',
      chargedSince: 0,
      available: 17,
    });
    expect(Date.parse(read.asOf)).toBeGreaterThan(Date.parse(first.asOf));
  });

  it('with ?cached=1 never reads Douyin: a user never read has no known balance', async () => {
    sim.setBalance({ openId: 'u-cached', serviceId: 's1', serviceModeId: 'm1', remaining: 5 });
    const listCalls = () => sim.state().calls.byPath['/market/service/user/purchase/list/'] ?? 0;
    const before = listCalls();
    expect(await balanceJson(fresh, 'u-cached', '&cached=1')).toMatchObject({
      douyinRemaining: null,
      asOf: null,
      source: null,
      available: null,
    });
    expect(listCalls()).toBe(before);
  });

  it('reads Douyin again when an order arrived after its snapshot, fresh or not', async () => {
    sim.setBalance({ openId: 'u-hook', serviceId: 's1', serviceModeId: 'm1', remaining: 4 });
    expect(await balanceJson(s, 'u-hook')).toMatchObject({ douyinRemaining: 4 });
    sim.setBalance({ openId: 'u-hook', serviceId: 's1', serviceModeId: 'm1', remaining: 9 });
    expect(await balanceJson(s, 'u-hook')).toMatchObject({ douyinRemaining: 4 }); // fresh: no read
    await addOrder(s.db, { openId: 'u-hook', orderId: 'O-hook', remaining: 5 });
    expect(await balanceJson(s, 'u-hook')).toMatchObject({
      douyinRemaining: 9,
      source: 'purchase_list',
      available: 9,
    });
  });

  it('counts a dead batch as charged (its outcome is unknown)', async () => {
    sim.setBalance({ openId: 'u-dead', serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
    await balanceJson(s, 'u-dead');
    const keyId = await addEvents('u-dead', [4]);
    const { batch } = await formBatch(s.db, {
      keyId,
      outTradeNo: `B-dead-${Date.now()}`,
      maxEvents: 10,
      maxCount: 100,
      deadlineSec: 60,
    });
    await settleBatch(s.db, null, batch!.id, { status: 'dead', reason: 'test' });
    expect(await balanceJson(s, 'u-dead')).toMatchObject({
      douyinRemaining: 10,
      chargedSince: 4,
      available: 6,
    });
  });

  it('keeps the older snapshot, saying why, when Douyin cannot answer', async () => {
    sim.setBalance({ openId: 'u-down', serviceId: 's1', serviceModeId: 'm1', remaining: 6 });
    await balanceJson(s, 'u-down');
    sim.setFaults({ http5xxRate: 1 });
    try {
      const b = await balanceJson(fresh, 'u-down');
      expect(b).toMatchObject({ douyinRemaining: 6, source: 'purchase_list', available: 6 });
      expect(b.refreshError).toEqual(expect.any(String));
    } finally {
      sim.setFaults({ http5xxRate: 0 });
    }
  });

  it('concurrent questions about one stale key cost one purchase-list read', async () => {
    sim.setBalance({ openId: 'u-many', serviceId: 's1', serviceModeId: 'm1', remaining: 7 });
    const listCalls = () => sim.state().calls.byPath['/market/service/user/purchase/list/'] ?? 0;
    const before = listCalls();
    const answers = await Promise.all(Array.from({ length: 8 }, () => balanceJson(s, 'u-many')));
    expect(answers.map((a) => a.douyinRemaining)).toEqual(Array(8).fill(7));
    expect(listCalls() - before).toBe(1);
  });

  it('needs an API key and valid parameters', async () => {
    expect((await balance(s, 'u-bal', '', 'Bearer wrong')).status).toBe(401);
    expect((await balance(s, 'u-bal', '', '')).status).toBe(401);
    const res = await fetch(`${s.url}/v1/users/u-bal/balance?serviceId=s1`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'invalid_request' } });
  });

  it('the SDK asks the same, and says whether a use fits', async () => {
    sim.setBalance({ openId: 'u-sdk', serviceId: 's1', serviceModeId: 'm1', remaining: 8 });
    await addEvents('u-sdk', [3]);
    const meter = createBalanceClient({ url: s.url, apiKey: API_KEY });
    expect(await meter.balance('u-sdk', 's1', 'm1')).toMatchObject({
      douyinRemaining: 8,
      pendingUses: 3,
      available: 5,
    });
    expect(await meter.canUse('u-sdk', 's1', 'm1', 5)).toBe(true);
    expect(await meter.canUse('u-sdk', 's1', 'm1', 6)).toBe(false);
    // Unknown (never read, cached only): no use is allowed.
    expect(await meter.canUse('u-sdk-unknown', 's1', 'm1', 1, { cached: true })).toBe(false);
    const wrong = createBalanceClient({ url: s.url, apiKey: 'wrong' });
    await expect(wrong.balance('u-sdk', 's1', 'm1')).rejects.toMatchObject({
      name: 'BalanceRequestError',
      status: 401,
    });
    await expect(wrong.balance('u-sdk', 's1', 'm1')).rejects.toBeInstanceOf(BalanceRequestError);
  });

  it('the CLI prints it', async () => {
    const env: Record<string, string | undefined> = {
      ...process.env,
      DATABASE_URL: s.databaseUrl,
      REDIS_URL: redisUrl(),
    };
    for (const k of Object.keys(env)) if (k.startsWith('DOUYIN_')) delete env[k];
    const run = promisify(execFile);
    const { stdout } = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'balance',
        '--open-id',
        'u-bal',
        '--service-id',
        's1',
        '--service-mode-id',
        'm1',
      ],
      { cwd: repoRoot, env },
    );
    expect(JSON.parse(stdout)).toMatchObject({
      openId: 'u-bal',
      douyinRemaining: 17,
      source: 'purchase_list',
    });
    await expect(
      run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'balance', '--open-id', 'u-bal'], {
        cwd: repoRoot,
        env,
      }),
    ).rejects.toMatchObject({ code: 2 });
  });
});
