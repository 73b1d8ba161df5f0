// A worker logging at its most verbose, through token fetches, token expiry and
// failing calls, never writes the client secret or an access token.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exited,
  fundUsers,
  makeEvents,
  type Pipeline,
  repoRoot,
  SIM_KEY,
  SIM_SECRET,
  startPipeline,
} from '../support/pipeline.js';

describe('worker logs', () => {
  let p: Pipeline;
  const users = ['lu1', 'lu2', 'lu3'];
  beforeAll(async () => {
    p = await startPipeline({ label: 'logs', faults: { busyRate: 0.3, latencyMs: 5 } });
    fundUsers(p.sim, users);
  });
  afterAll(async () => p.close());

  it('hold neither the client secret nor any access token', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'workers/worker.ts'], {
      cwd: repoRoot,
      env: { ...process.env, ...p.env, LOG_LEVEL: 'trace' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const tokens = new Set<string>();
    const tokenKey = `${p.env.REDIS_PREFIX}:douyin:token:${SIM_KEY}`;
    const noteToken = async () => {
      const raw = await p.redis.get(tokenKey);
      if (raw) tokens.add(JSON.parse(raw).token as string);
    };

    await p.send(makeEvents(60, users, 'log-a'));
    await p.waitUntilSettled(60_000); // charged, so a token was fetched and used
    await noteToken();
    p.sim.expireTokens(); // the next calls are refused, the token is fetched again
    await p.send(makeEvents(60, users, 'log-b'));
    await p.waitUntilSettled(60_000);
    await noteToken();
    child.kill('SIGTERM');
    await exited(child);

    expect(p.sim.state().tokensIssued).toBeGreaterThanOrEqual(2);
    expect(tokens.size).toBeGreaterThanOrEqual(2);
    expect(output).toContain('worker started'); // it did log, at trace level
    expect(output.length).toBeGreaterThan(1_000);
    expect(output).not.toContain(SIM_SECRET);
    for (const t of tokens) expect(output).not.toContain(t);
    await p.expectExactTotals();
  });
});
