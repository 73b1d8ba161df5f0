// Douyin forgets an out_trade_no a month after its deduction; the same call then
// deducts again. So nothing re-sends a batch first sent longer ago than 90% of
// DOUYIN_IDEMPOTENCY_WINDOW_SEC: it goes dead (idempotency_window), replay skips
// it, and an operator resolves it. Shown here with a window of two seconds on both
// the meter and the simulator.

import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DouyinError } from '../../src/douyin/index.js';
import { replayBatches } from '../../src/metering/replay.js';
import { resolveBatches } from '../../src/metering/resolve.js';
import { keyEvents, keyStatuses } from '../support/ledger.js';
import { repoRoot } from '../support/pipeline.js';
import { redisUrl, uniquePrefix } from '../support/services.js';
import { type ChargerHarness, interceptDecr, startChargerHarness } from './charger-harness.js';

const WINDOW_SEC = 2;
let h: ChargerHarness;
let prefix: string;
beforeAll(async () => {
  h = await startChargerHarness('window');
  h.sim.setSettings({ idempotencyWindowSec: WINDOW_SEC });
  prefix = uniquePrefix('window');
});
afterAll(async () => h.close());

const deducted = (openId: string) => h.sim.state().balances.find((b) => b.openId === openId)?.deducted ?? 0;

/** A key whose batch Douyin applied but whose answer was lost; the batch stays open. */
async function appliedButAnswerLost(openId: string, counts: number[]) {
  const keyId = await h.seedKey(openId, counts);
  const lost = h.charger({
    idempotencyWindowSec: WINDOW_SEC,
    api: {
      getUserServicePurchaseList: h.client.getUserServicePurchaseList.bind(h.client),
      decrUserRemainTimes: async (input, opts) => {
        await h.client.decrUserRemainTimes(input, opts);
        throw new DouyinError({ kind: 'network', description: 'test: answer lost' });
      },
    },
  });
  await expect(lost.chargeKey(keyId)).rejects.toThrow(/answer lost/);
  const batch = await h.db.chargeBatch.findFirstOrThrow({ where: { keyId } });
  expect(batch).toMatchObject({ status: 'open', attempts: 1 });
  expect(batch.firstAttemptAt).not.toBeNull();
  return { keyId, batch };
}

describe('the idempotency window', () => {
  it('a batch first sent longer ago than 90% of the window is never sent again: dead, not deducted twice', async () => {
    const { keyId, batch } = await appliedButAnswerLost('win-a', [3, 4]);
    expect(deducted('win-a')).toBe(7);
    await sleep(WINDOW_SEC * 1000 + 200); // past the simulator's window too

    let calls = 0;
    const charger = h.charger({
      idempotencyWindowSec: WINDOW_SEC,
      api: interceptDecr(h.client, () => {
        calls++;
      }),
    });
    expect(await charger.chargeKey(keyId)).toBe('dead');
    expect(calls).toBe(0);
    const dead = await h.db.chargeBatch.findUniqueOrThrow({ where: { id: batch.id } });
    expect(dead.status).toBe('dead');
    expect(dead.deadReason).toMatch(/^idempotency_window: /);
    expect(deducted('win-a')).toBe(7);

    // What the guard prevented: past its window, Douyin deducts the same call again.
    await h.client.decrUserRemainTimes({
      openId: 'win-a',
      serviceId: 's1',
      serviceModeId: 'm1',
      count: 7,
      outTradeNo: batch.outTradeNo,
      isTestEnv: false,
    });
    expect(deducted('win-a')).toBe(14);
  });

  it('replay skips it, naming the window; resolve as uncharged charges its events under a new out_trade_no', async () => {
    const { keyId, batch } = await appliedButAnswerLost('win-b', [2, 5]);
    await sleep(WINDOW_SEC * 900 + 100);
    const charger = h.charger({ idempotencyWindowSec: WINDOW_SEC });
    expect(await charger.chargeKey(keyId)).toBe('dead');

    const deps = { db: h.db, redis: h.redis, prefix, idempotencyWindowSec: WINDOW_SEC };
    const replay = await replayBatches(deps, { id: batch.id }, 'test');
    expect(replay.replayed).toEqual([]);
    expect(replay.skipped).toEqual([
      {
        id: String(batch.id),
        reason: expect.stringMatching(/^idempotency_window: .*2 s idempotency window/),
      },
    ]);
    const bulk = await replayBatches(deps, { allDead: true }, 'test');
    expect(bulk.skipped.map((s) => s.id)).toContain(String(batch.id));

    // The operator checked the user's remaining times and found the 7 uses not
    // deducted (say): resolve as uncharged, through the CLI.
    const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const c = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/cli/main.ts', 'batches', 'resolve', String(batch.id), '--as', 'uncharged'],
        {
          cwd: repoRoot,
          env: { ...process.env, DATABASE_URL: h.databaseUrl, REDIS_URL: redisUrl(), REDIS_PREFIX: prefix },
        },
      );
      let stdout = '';
      c.stdout.on('data', (d) => (stdout += d));
      c.on('exit', (code) => resolve({ code, stdout }));
    });
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ resolved: [String(batch.id)], skipped: [] });
    expect(await h.db.chargeBatch.findUniqueOrThrow({ where: { id: batch.id } })).toMatchObject({
      status: 'voided',
      resolvedAs: 'uncharged',
      resolvedBy: expect.stringMatching(/^cli:/),
    });
    const before = deducted('win-b');
    expect(await charger.chargeKey(keyId)).toBe('charged');
    const rebatched = await h.db.chargeBatch.findFirstOrThrow({ where: { keyId, status: 'charged' } });
    expect(rebatched.outTradeNo).not.toBe(batch.outTradeNo);
    expect(rebatched.count).toBe(7);
    expect(deducted('win-b')).toBe(before + 7);
    // The successor batch holds the voided one's range: the same events, now charged under it.
    expect(rebatched).toMatchObject({ eventCount: 2, firstSeq: batch.firstSeq, lastSeq: batch.lastSeq });
    const events = await keyEvents(h.db, keyId);
    expect(events.map((e) => [e.count, e.status, e.batchId])).toEqual([
      [2, 'charged', rebatched.id],
      [5, 'charged', rebatched.id],
    ]);
    expect(await h.db.chargeBatch.count({ where: { keyId } })).toBe(2);
    const audit = await h.db.operatorAudit.findFirstOrThrow({ where: { action: 'batch.resolve' } });
    expect(audit).toMatchObject({ target: String(batch.id), details: { as: 'uncharged', count: 7 } });
    expect(audit.actor).toMatch(/^cli:/);
  });

  it('resolve as charged settles a dead batch without a call; only dead or insufficient parents resolve', async () => {
    const keyId = await h.seedKey('win-c', [4]);
    const refusing = h.charger({
      api: interceptDecr(h.client, () => {
        throw new DouyinError({ kind: 'forbidden', errorCode: 28001018, description: 'test: no capability' });
      }),
    });
    expect(await refusing.chargeKey(keyId)).toBe('dead');
    const batch = await h.db.chargeBatch.findFirstOrThrow({ where: { keyId } });
    const deps = { db: h.db, redis: h.redis, prefix };
    expect(await resolveBatches(deps, [batch.id], 'charged', 'op@test')).toEqual({
      resolved: [String(batch.id)],
      skipped: [],
    });
    expect(await h.db.chargeBatch.findUniqueOrThrow({ where: { id: batch.id } })).toMatchObject({
      status: 'charged',
      chargedCount: 4,
      resolvedAs: 'charged',
      resolvedBy: 'op@test',
    });
    expect(await keyStatuses(h.db, keyId)).toEqual(['charged']);
    expect(h.sim.state().trades.filter((t) => t.openId === 'win-c')).toEqual([]);
    // Resolving it again, or an unknown batch, is refused with a reason.
    const again = await resolveBatches(deps, [batch.id, 999_999n], 'uncharged', 'op@test');
    expect(again.resolved).toEqual([]);
    expect(again.skipped).toEqual([
      { id: String(batch.id), reason: expect.stringMatching(/status is charged/) },
      { id: '999999', reason: 'no such batch' },
    ]);
  });
});
