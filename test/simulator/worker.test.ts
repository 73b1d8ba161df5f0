// `npm run sim` (workers/simulator.ts) as a child process: env, one startup line, SIGTERM.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function startWorker(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/simulator.ts'], {
    cwd: process.cwd(),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', () => {
      if (stdout.includes('\n')) resolve(stdout.split('\n')[0]!);
    });
    child.on('exit', (c) => reject(new Error(`exited ${c}: ${stderr}`)));
  });
  firstLine.catch(() => {}); // awaited only by tests that expect a start
  return { child, exited, firstLine, output: () => ({ stdout, stderr }) };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('workers/simulator.ts', () => {
  it('listens on SIM_PORT, prints the URL and client key (not the secret), issues tokens and exits on SIGTERM', async () => {
    const port = await freePort();
    const w = startWorker({
      SIM_PORT: String(port),
      SIM_CLIENT_KEY: 'child-key',
      SIM_CLIENT_SECRET: 'child-very-secret',
      SIM_BUSY_RATE: '1',
      SIM_LATENCY_MS: '',
    });
    const line = await w.firstLine;
    expect(line).toContain(`http://127.0.0.1:${port}/`);
    expect(line).toContain('child-key');
    expect(line).not.toContain('child-very-secret');

    const res = await fetch(`http://127.0.0.1:${port}/oauth/client_token/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_key: 'child-key',
        client_secret: 'child-very-secret',
        grant_type: 'client_credential',
      }),
    });
    const token = (await res.json()) as { data: { error_code: number; access_token: string } };
    expect(token.data.error_code).toBe(0);
    const faults = (await (await fetch(`http://127.0.0.1:${port}/_sim/faults`)).json()) as {
      busyRate: number;
    };
    expect(faults.busyRate).toBe(1);

    w.child.kill('SIGTERM');
    expect(await w.exited).toBe(0);
    expect(w.output().stdout + w.output().stderr).not.toContain('child-very-secret');
  });

  it('exits 2 with one message naming every bad variable', async () => {
    const w = startWorker({ SIM_PORT: '0', SIM_QPS: 'many', SIM_BUSY_RATE: '2', SIM_HANG_RATE: '0.1' });
    expect(await w.exited).toBe(2);
    const { stderr, stdout } = w.output();
    expect(stderr).toContain('SIM_QPS');
    expect(stderr).toContain('SIM_BUSY_RATE');
    expect(stderr).not.toContain('SIM_HANG_RATE');
    expect(stdout).toBe('');
  });
});
