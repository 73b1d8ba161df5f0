// `npm run demo` as a newcomer runs it: no REDIS_URL, no DATABASE_URL, no .env. It
// must bring everything up and show charged batches within a minute, then stop
// cleanly on Ctrl-C (SIGINT to its whole process group, as a terminal sends it).

import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { repoRoot } from './support/pipeline.js';

it('npm run demo brings the system up, the dashboard API shows charged batches within a minute, Ctrl-C stops it', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', LOG_LEVEL: 'warn' };
  for (const k of ['REDIS_URL', 'DATABASE_URL', 'REDIS_PREFIX', 'API_KEYS', 'DASHBOARD_USERS']) delete env[k];
  const demo = spawn('npm', ['run', '-s', 'demo'], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, like a job in a terminal
  });
  let out = '';
  demo.stdout.on('data', (d) => {
    out += String(d);
  });
  demo.stderr.on('data', (d) => {
    out += String(d);
  });
  const exited = new Promise<string>((resolve) =>
    demo.once('exit', (code, signal) => resolve(signal ?? `exit ${code}`)),
  );
  try {
    const t0 = Date.now();
    let url: string | undefined;
    let auth: string | undefined;
    let charged = 0;
    while (Date.now() - t0 < 60_000 && charged === 0) {
      await sleep(500);
      url ??= /dashboard: +(http\S+?)\/?\n/.exec(out)?.[1];
      const signIn = /sign in as: (\S+) \/ (\S+)\n/.exec(out);
      if (signIn) auth = `Basic ${Buffer.from(`${signIn[1]}:${signIn[2]}`).toString('base64')}`;
      if (!url || !auth) continue;
      const res = await fetch(`${url}/api/status`, { headers: { authorization: auth } });
      expect(res.status).toBe(200);
      const status = (await res.json()) as { batches: Record<string, number> };
      charged = status.batches.charged ?? 0;
    }
    expect({ charged: charged > 0, output: charged > 0 ? '' : out }).toEqual({ charged: true, output: '' });
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
  } finally {
    process.kill(-demo.pid!, 'SIGINT');
  }
  // npm waits for the demo, then ends by the same signal.
  expect(['exit 0', 'SIGINT']).toContain(await exited);
  expect(out).toMatch(/\[demo\] stopped/);
  expect(out).not.toMatch(/\[demo\] (failed|cleanup)/);
}, 90_000);
