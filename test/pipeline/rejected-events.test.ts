// A job placed on the events queue directly (bypassing the API) with events the
// ledger refuses among good ones: the good ones are charged exactly, the bad ones
// are in rejected_event with their reason, the job completes instead of being
// retried forever, and operators see them (status CLI, GET /api/rejected-events).

import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createQueues, type EventsJobData, type MeterQueues } from '../../src/queue/queues.js';
import { startTestServer } from '../server/helpers.js';
import { fundUsers, makeEvents, type Pipeline, repoRoot, startPipeline } from '../support/pipeline.js';

function runCli(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('events the ledger refuses, on a job that bypassed the API', () => {
  let p: Pipeline;
  let queues: MeterQueues;
  beforeAll(async () => {
    p = await startPipeline({ label: 'rejected' });
    queues = createQueues(p.redis, p.env.REDIS_PREFIX!);
    fundUsers(p.sim, ['rj1', 'rj2', 'rj3']);
    await p.startWorker();
  });
  afterAll(async () => {
    await queues.close();
    await p.close();
  });

  it('charges the good events exactly, records the bad ones with their reason, completes the job', async () => {
    const good = makeEvents(30, ['rj1', 'rj2', 'rj3'], 'rj-good').map((e) => ({ ...e, isTestEnv: false }));
    const base = { openId: 'rj1', serviceId: 's1', serviceModeId: 'm1', count: 1, isTestEnv: false };
    const bad = [
      { ...base, eventId: 'rj-nul', attributes: { note: 'before\u0000after' } },
      { ...base, eventId: 'rj-surrogate', attributes: { note: '\udc00' } },
      { ...base, eventId: 'rj-count', count: 3_000_000_000 },
    ];
    const events = [
      ...good.slice(0, 10),
      bad[0]!,
      ...good.slice(10, 20),
      bad[1]!,
      bad[2]!,
      ...good.slice(20),
    ];
    const job = await queues.events.add('events', { events, source: 'sdk' } as EventsJobData);
    for (const e of good) p.sent.set(e.eventId, e);

    await p.waitUntilSettled();
    await p.expectExactTotals();
    const rejected = await p.db.rejectedEvent.findMany({ orderBy: { jobIndex: 'asc' } });
    expect(rejected.map((r) => [r.eventId, r.reason, r.source, r.jobIndex])).toEqual([
      ['rj-nul', expect.stringMatching(/^22P05 unsupported Unicode escape sequence/), 'sdk', 10],
      ['rj-surrogate', expect.stringMatching(/^22P02 invalid input syntax for type json/), 'sdk', 21],
      ['rj-count', expect.stringMatching(/^22003 .*out of range/), 'sdk', 22],
    ]);
    expect(JSON.parse(rejected[0]!.raw)).toEqual(bad[0]);
    expect(JSON.parse(rejected[1]!.raw)).toEqual(bad[1]);
    for (;;) {
      const state = await queues.events.getJobState(job.id!);
      if (state === 'completed') break;
      expect(state).not.toBe('failed');
      await sleep(50);
    }
    const done = await queues.events.getJob(job.id!);
    expect(done?.attemptsMade).toBe(1); // one run, no retry
    expect(done?.returnvalue).toEqual({ recorded: 30, duplicates: 0, rejected: 3 });

    // Visible to operators: the status CLI...
    const status = await runCli(['status'], p.env);
    expect(status.code, status.stderr).toBe(0);
    const json = JSON.parse(status.stdout);
    expect(json.rejectedEvents.total).toBe(3);
    expect(json.rejectedEvents.latest.map((r: { eventId: string }) => r.eventId)).toEqual([
      'rj-count',
      'rj-surrogate',
      'rj-nul',
    ]);
    expect(json.rejectedEvents.latest[2].reason).toMatch(/^22P05 /);

    // ...and the operator API behind the dashboard's "Rejected events".
    const s = await startTestServer({ label: 'rejected_api', databaseUrl: p.env.DATABASE_URL });
    try {
      const res = await s.api('/api/rejected-events?limit=2');
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body.total).toBe(3);
      expect(body.latest).toEqual([
        {
          id: expect.any(String),
          eventId: 'rj-count',
          reason: expect.stringMatching(/^22003 /),
          source: 'sdk',
          receivedAt: expect.any(String),
          raw: JSON.stringify(bad[2]),
        },
        expect.objectContaining({ eventId: 'rj-surrogate' }),
      ]);
      expect((await s.api('/api/rejected-events?limit=0')).status).toBe(400);
    } finally {
      await s.close();
    }
  });
});
