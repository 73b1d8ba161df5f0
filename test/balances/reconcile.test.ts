// Reconciliation (src/balances/reconcile.ts, the CLI, the operators' API): Douyin's
// remaining times against what the ledger expects from the previous snapshot. A
// deduction made outside the meter shows as drift of exactly that many uses; the
// meter's own charges show none; nothing is corrected.

import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balanceOf } from '../../src/balances/balance.js';
import { reconcileKey } from '../../src/balances/reconcile.js';
import { Reconciler } from '../../src/balances/reconciler.js';
import type { DouyinMarketClient } from '../../src/douyin/index.js';
import { RateLimiter } from '../../src/douyin/index.js';
import { releaseKeyLease, takeKeyLease } from '../../src/ledger/key-lease.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { createLogger } from '../../src/logger.js';
import { Charger } from '../../src/metering/charger.js';
import { LeaseBusyError } from '../../src/metering/errors.js';
import { registry } from '../../src/metrics.js';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { repoRoot, startTestServer, type TestServer } from '../server/helpers.js';
import { chargePending, simulatorClient } from '../support/douyin.js';
import { addEvents } from '../support/ledger.js';
import { redisUrl, uniquePrefix } from '../support/services.js';

let sim: RunningSimulator;
let redis: Redis;
let client: DouyinMarketClient;
let s: TestServer;
beforeAll(async () => {
  sim = await startSimulator();
  redis = new Redis(redisUrl());
  client = simulatorClient(sim, redis, 'reconcile');
  s = await startTestServer({ label: 'reconcile', douyin: client });
});
afterAll(async () => {
  await s?.close();
  await client?.close();
  await sim?.close();
  redis?.disconnect();
});

const OPTS = { owner: 'test:reconcile' };
const key = (openId: string) => ({ openId, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false });

/** The meter charges `counts` for the user: events, then a batch charged as the worker would. */
async function meterCharges(openId: string, counts: number[]): Promise<void> {
  const id = [...(await upsertKeys(s.db, [key(openId)])).values()][0]!;
  await addEvents(s.db, id, counts, openId);
  await chargePending(s.db, client, { id, ...key(openId) });
}

describe('reconciliation', () => {
  it('finds a deduction made outside the meter as drift of exactly its uses, and none for the meter’s own', async () => {
    sim.setBalance({ ...key('u-rec'), remaining: 20 });
    expect(await reconcileKey(s.db, client, key('u-rec'), OPTS)).toMatchObject({
      status: 'baseline',
      remaining: 20,
    });

    await meterCharges('u-rec', [2, 1]);
    const clean = await reconcileKey(s.db, client, key('u-rec'), OPTS);
    expect(clean).toMatchObject({
      status: 'checked',
      drift: { previousRemaining: 20, charged: 3, expected: 17, actual: 17, drift: 0 },
    });

    await meterCharges('u-rec', [4]);
    // Someone deducts 2 with the CLI's `douyin decr`, outside the meter; then an app
    // asks for the balance (a purchase-list read): the check still sees the drift.
    await client.decrUserRemainTimes({ ...key('u-rec'), count: 2, outTradeNo: 'OUTSIDE-1' });
    expect(await balanceOf(s.db, key('u-rec'), { maxAgeSec: 0, douyin: client })).toMatchObject({
      douyinRemaining: 11,
    });
    const drift = await reconcileKey(s.db, client, key('u-rec'), OPTS);
    expect(drift).toMatchObject({
      status: 'checked',
      drift: { previousRemaining: 17, charged: 4, expected: 13, actual: 11, drift: -2, uncertain: 0 },
    });
    if (drift.status !== 'checked') throw new Error('expected a check');
    expect(drift.drift.evidence.charged).toEqual([expect.objectContaining({ count: 4, status: 'charged' })]);

    // Nothing was corrected: the ledger's batches are as they were; the finding is kept.
    expect(await s.db.chargeBatch.count({ where: { key: { openId: 'u-rec' } } })).toBe(2);
    const res = await s.api('/api/drift');
    expect(res.status).toBe(200);
    expect((await res.json()).items).toEqual([
      expect.objectContaining({ openId: 'u-rec', drift: -2, expected: 13, actual: 11 }),
    ]);
  });

  it('skips test mode, reports a read it could not make and a key a charge run holds', async () => {
    expect(await reconcileKey(s.db, client, { ...key('u-test'), isTestEnv: true }, OPTS)).toEqual({
      key: { ...key('u-test'), isTestEnv: true },
      status: 'skipped_test_env',
    });
    sim.setFaults({ http5xxRate: 1 });
    try {
      expect(await reconcileKey(s.db, client, key('u-rec'), OPTS)).toMatchObject({ status: 'failed' });
    } finally {
      sim.setFaults({ http5xxRate: 0 });
    }
    // A charge run holds the key: not read now (its batch may be in flight).
    const keyId = (await s.db.meterKey.findFirstOrThrow({ where: { openId: 'u-rec' } })).id;
    const held = await takeKeyLease(s.db, keyId, 'a-charge-run', 60_000);
    try {
      expect(await reconcileKey(s.db, client, key('u-rec'), OPTS)).toMatchObject({ status: 'busy' });
    } finally {
      if (held.kind === 'leased') await releaseKeyLease(s.db, held.lease);
    }
  });

  it('the CLI reconciles a user’s keys and prints the drift', async () => {
    sim.setBalance({ ...key('u-cli'), remaining: 9 });
    await meterCharges('u-cli', [1]); // Douyin 8; the meter knows no snapshot yet
    const env: Record<string, string | undefined> = {
      ...process.env,
      DATABASE_URL: s.databaseUrl,
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: uniquePrefix('reconcile-cli'),
      DOUYIN_BASE_URL: sim.url,
      DOUYIN_CLIENT_KEY: 'sim-client-key',
      DOUYIN_CLIENT_SECRET: 'sim-client-secret',
    };
    const run = (...args: string[]) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'reconcile', ...args], {
        cwd: repoRoot,
        env,
      });
    expect((await run('--open-id', 'u-cli')).stdout).toMatch(/u-cli s1\/m1: first snapshot \(8\)/);
    await client.decrUserRemainTimes({ ...key('u-cli'), count: 3, outTradeNo: 'OUTSIDE-CLI' });
    const out = JSON.parse((await run('--open-id', 'u-cli', '--json')).stdout);
    expect(out).toEqual([
      expect.objectContaining({ status: 'checked', drift: expect.objectContaining({ drift: -3 }) }),
    ]);
    await expect(run('--since-sec', 'soon')).rejects.toMatchObject({ code: 2 });
  });

  it('the workers’ periodic run takes the keys active since the last complete run, one process a turn', async () => {
    sim.setBalance({ ...key('u-periodic'), remaining: 30 });
    await reconcileKey(s.db, client, key('u-periodic'), OPTS); // baseline 30
    await meterCharges('u-periodic', [5]);
    await client.decrUserRemainTimes({ ...key('u-periodic'), count: 1, outTradeNo: 'OUTSIDE-P' });
    const prefix = uniquePrefix('reconciler');
    const make = (workerId: string) =>
      new Reconciler({
        db: s.db,
        redis,
        prefix,
        douyin: client,
        intervalMs: 60_000,
        workerId,
        logger: createLogger({ level: 'silent' }),
      });
    const [a, b] = [make('w1'), make('w2')];

    // Douyin is down: the run checks nothing and the keys stay due.
    sim.setFaults({ http5xxRate: 1 });
    try {
      await a.run();
    } finally {
      sim.setFaults({ http5xxRate: 0 });
    }
    expect(await redis.get(`${prefix}:reconcile:last`)).toBeNull();

    const counts = await Promise.all([a.run(), b.run()]);
    expect(counts.filter((n) => n > 0)).toHaveLength(1); // one process had the turn
    expect(await redis.get(`${prefix}:reconcile:last`)).not.toBeNull();
    const latest = await s.db.balanceDrift.findFirstOrThrow({
      where: { openId: 'u-periodic', latest: true },
    });
    expect(latest).toMatchObject({ expected: 25, actual: 24, drift: -1, cumulativeDrift: -1 });

    // A drift stays listed after later checks that find nothing new (cumulative).
    await b.refreshGauge();
    const gauge = (await registry.getSingleMetric('um_balance_drift_keys')!.get()).values[0]!.value;
    const listed = (await (await s.api('/api/drift')).json()).items.map((d: { openId: string }) => d.openId);
    expect(listed.sort()).toEqual(['u-cli', 'u-periodic', 'u-rec']);
    expect(gauge).toBe(3);
  });

  it('racing charge runs for the same key: every use deducted exactly once, and no drift found', async () => {
    sim.setBalance({ ...key('u-race'), remaining: 1_000 });
    const charger = new Charger({
      db: s.db,
      api: client,
      limiter: new RateLimiter({ redis, key: uniquePrefix('reconcile-race-rl'), qps: 1_000 }),
      logger: createLogger({ level: 'silent' }),
      workerId: 'race-worker',
      insufficientPolicy: 'reject',
      windowMs: 200,
      maxEvents: 1_000,
      maxCount: 1_000_000,
      deadlineSec: 60,
      idempotencyWindowSec: 2_592_000,
      leaseMs: 30_000,
    });
    const keyId = [...(await upsertKeys(s.db, [key('u-race')])).values()][0]!;
    expect(await reconcileKey(s.db, client, key('u-race'), OPTS)).toMatchObject({ status: 'baseline' });
    let uses = 0;
    const outcomes: string[] = [];
    /** Resolves once `owner` holds the key's lease (its run is between its statements). */
    const holding = async (owner: string) => {
      for (;;) {
        const rows = await s.db.$queryRaw<{ owner: string | null; until: Date | null }[]>`
          SELECT owner, until FROM key_lease WHERE key_id = ${keyId}`;
        if (rows[0]?.owner === owner && rows[0].until) return;
        await sleep(5);
      }
    };
    const chargeOrBusy = () =>
      charger.chargeKey(keyId).catch((err) => {
        if (err instanceof LeaseBusyError) return 'busy';
        throw err;
      });
    sim.setFaults({ latencyMs: 150 }); // each Douyin call holds the lease a while
    try {
      for (let round = 0; round < 4; round++) {
        await addEvents(s.db, keyId, [1 + round, 2], `race-${round}`);
        uses += 3 + round;
        // Each in turn takes the key's lease first; the other meets it held.
        if (round % 2 === 0) {
          const charging = chargeOrBusy();
          await holding('race-worker');
          const checked = await reconcileKey(s.db, client, key('u-race'), OPTS);
          outcomes.push(await charging, checked.status);
        } else {
          const checking = reconcileKey(s.db, client, key('u-race'), OPTS);
          await holding(OPTS.owner);
          const charged = await chargeOrBusy();
          const checked = await checking;
          outcomes.push(charged, checked.status);
          if (checked.status === 'checked') expect(checked.drift.drift).toBe(0);
        }
      }
    } finally {
      sim.setFaults({ latencyMs: 0 });
    }
    expect(outcomes).toEqual(['charged', 'busy', 'busy', 'checked', 'charged', 'busy', 'busy', 'checked']);
    while ((await charger.chargeKey(keyId)) !== 'idle');
    const final = await reconcileKey(s.db, client, key('u-race'), OPTS);
    expect(final).toMatchObject({ status: 'checked', drift: { drift: 0, cumulativeDrift: 0 } });
    const deducted = sim.state().balances.find((b) => b.openId === 'u-race')!.deducted;
    expect(deducted).toBe(uses);
  });
});
