// Pausing and resuming charging from the operators' API and the CLI: the state,
// who did it and why, the audit trail, /api/status and um_charging_paused, and the
// same-origin rule. (What a pause does to charging: test/pipeline/charging-pause.test.ts.)
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisUrl } from '../support/services.js';
import { repoRoot, startTestServer, type TestServer } from './helpers.js';

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ label: 'charging', metricsRefreshMs: 0 });
});
afterAll(async () => s?.close());

const body = async (res: Response) => ({
  status: res.status,
  json: (await res.json()) as Record<string, unknown>,
});

describe('/api/charging', () => {
  it('pauses and resumes, says who and why, audits both, and shows in /api/status and /metrics', async () => {
    expect(await body(await s.api('/api/charging'))).toEqual({ status: 200, json: { paused: false } });
    const paused = await body(
      await s.api('/api/charging/pause', { method: 'POST', body: { reason: 'Douyin incident' } }),
    );
    expect(paused).toMatchObject({
      status: 200,
      json: { paused: true, by: 'ops', reason: 'Douyin incident' },
    });
    expect(await s.queues.charge.isPaused()).toBe(true);
    expect((await body(await s.api('/api/status'))).json.charging as object).toMatchObject({
      paused: true,
      by: 'ops',
    });
    expect(await (await fetch(`${s.url}/metrics`)).text()).toMatch(/^um_charging_paused 1$/m);

    expect(await body(await s.api('/api/charging/resume', { method: 'POST', body: {} }))).toEqual({
      status: 200,
      json: { paused: false },
    });
    expect(await s.queues.charge.isPaused()).toBe(false);
    expect(await (await fetch(`${s.url}/metrics`)).text()).toMatch(/^um_charging_paused 0$/m);
    const audit = await s.db.operatorAudit.findMany({ orderBy: { id: 'asc' } });
    expect(audit.map((a) => [a.actor, a.action, a.details])).toEqual([
      ['ops', 'charging.pause', { reason: 'Douyin incident' }],
      ['ops', 'charging.resume', { deadlinesMoved: '0' }],
    ]);
  });

  it('gives the batches that waited their retry time back, never past 90% of the idempotency window', async () => {
    const key = await s.db.meterKey.create({
      data: { openId: 'paused', serviceId: 's1', serviceModeId: 'm1', isTestEnv: false },
    });
    const H = 3_600_000;
    const batch = (n: string, firstAttemptAgoMs: number | null, deadlineInMs: number) =>
      s.db.chargeBatch.create({
        data: {
          keyId: key.id,
          outTradeNo: `paused-${n}`,
          count: 1,
          eventCount: 0,
          deadlineAt: new Date(Date.now() + deadlineInMs),
          firstAttemptAt: firstAttemptAgoMs === null ? null : new Date(Date.now() - firstAttemptAgoMs),
        },
      });
    const fresh = await batch('fresh', H, 60_000);
    const unsent = await batch('unsent', null, 60_000);
    const old = await batch('old', 27 * 24 * H - H / 2, 60_000);
    await body(await s.api('/api/charging/pause', { method: 'POST', body: {} }));
    // Paused two hours ago.
    await s.redis.hset(`${s.prefix}:charging-pause`, 'at', new Date(Date.now() - 2 * H).toISOString());
    await body(await s.api('/api/charging/resume', { method: 'POST', body: {} }));
    const deadlineOf = async (id: bigint) =>
      (await s.db.chargeBatch.findUniqueOrThrow({ where: { id } })).deadlineAt.getTime();
    for (const b of [fresh, unsent]) {
      const moved = (await deadlineOf(b.id)) - b.deadlineAt.getTime();
      expect(Math.abs(moved - 2 * H)).toBeLessThan(5_000);
    }
    // 27 days less half an hour after its first attempt: capped at 27 days (90% of a month), not 2 h later.
    const cap = old.firstAttemptAt!.getTime() + 0.9 * 30 * 24 * H;
    expect(Math.abs((await deadlineOf(old.id)) - cap)).toBeLessThan(5_000);
    expect(
      await s.db.operatorAudit.findFirst({ where: { action: 'charging.resume' }, orderBy: { id: 'desc' } }),
    ).toMatchObject({
      details: { deadlinesMoved: '3' },
    });
  });

  it('refuses a cross-origin pause, a bad reason, and anonymous callers', async () => {
    const evil = await fetch(`${s.url}/api/charging/pause`, {
      method: 'POST',
      headers: { origin: 'https://evil.example', 'content-type': 'application/json', cookie: 'x=y' },
      body: '{}',
    });
    expect(evil.status).toBe(403);
    const anonymous = await fetch(`${s.url}/api/charging/pause`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(anonymous.status).toBe(401);
    const bad = await body(
      await s.api('/api/charging/pause', { method: 'POST', body: { reason: 'a\u0000b' } }),
    );
    expect(bad.status).toBe(400);
    expect(await s.queues.charge.isPaused()).toBe(false);
  });

  it('the CLI pauses, reports and resumes the same deployment', async () => {
    const env = {
      ...process.env,
      DATABASE_URL: s.databaseUrl,
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: s.prefix,
      USER: 'alice',
    };
    const cli = async (...args: string[]) =>
      JSON.parse(
        (
          await promisify(execFile)(
            process.execPath,
            ['--import', 'tsx', 'src/cli/main.ts', 'charging', ...args],
            {
              cwd: repoRoot,
              env,
            },
          )
        ).stdout,
      );
    expect(await cli('pause', '--reason', 'deploy')).toMatchObject({
      paused: true,
      by: 'cli:alice',
      reason: 'deploy',
    });
    expect((await body(await s.api('/api/charging'))).json).toMatchObject({ paused: true, by: 'cli:alice' });
    expect(await cli('status')).toMatchObject({ paused: true, by: 'cli:alice' });
    expect(await cli('resume')).toEqual({ paused: false });
    expect(await s.queues.charge.isPaused()).toBe(false);
    expect(
      (await s.db.operatorAudit.findMany({ where: { actor: 'cli:alice' } })).map((a) => a.action),
    ).toEqual(['charging.pause', 'charging.resume']);
  }, 60_000);
});
