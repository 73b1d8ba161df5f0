// `npm run cli -- events import`: garbage lines reported with line numbers,
// duplicates counted, valid lines enqueued and charged exactly.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fundUsers, type Pipeline, repoRoot, startPipeline } from '../support/pipeline.js';

function runCli(args: string[], env: Record<string, string>, stdin?: string) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('exit', (code) => resolve({ code, stdout, stderr }));
    if (stdin !== undefined) c.stdin.end(stdin);
    else c.stdin.end();
  });
}

describe('events import', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline({ label: 'import' });
    fundUsers(p.sim, ['iu1', 'iu2', 'iu3']);
    await p.startWorker();
  });
  afterAll(async () => p.close());

  it('reports bad lines with their number and reason, enqueues the valid ones, exits 1', async () => {
    const good = (i: number, count = 2) =>
      JSON.stringify({
        eventId: `imp-${i}`,
        openId: `iu${(i % 3) + 1}`,
        serviceId: 's1',
        serviceModeId: 'm1',
        count,
      });
    const lines = [
      good(1),
      '{not json',
      good(2),
      JSON.stringify({ eventId: 'bad-count', openId: 'iu1', serviceId: 's1', serviceModeId: 'm1', count: 0 }),
      '',
      good(1), // duplicate within the file
      JSON.stringify({ eventId: 'no-open', serviceId: 's1', serviceModeId: 'm1', count: 1 }),
      '42',
      JSON.stringify({
        eventId: 'big',
        openId: 'iu1',
        serviceId: 's1',
        serviceModeId: 'm1',
        count: 1,
        attributes: { a: 'x'.repeat(70_000) },
      }),
      ...Array.from({ length: 300 }, (_, i) => good(100 + i, 1)),
    ];
    const file = join(tmpdir(), `import-${Date.now()}.ndjson`);
    await writeFile(file, `${lines.join('\n')}\n`);
    const r = await runCli(['events', 'import', file], p.env);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout.trim()), r.stderr).toEqual({
      lines: 308,
      accepted: 302,
      duplicates: 1,
      rejected: 5,
    });
    expect(
      r.stderr
        .trim()
        .split('\n')
        .map((l) => Number(/^line (\d+)/.exec(l)?.[1])),
    ).toEqual([2, 4, 7, 8, 9]);
    expect(r.stderr).toMatch(/^line 2: invalid JSON/m);
    expect(r.stderr).toMatch(/^line 4: count: count must be at least 1/m);
    expect(r.stderr).toMatch(/^line 7: openId/m);
    expect(r.stderr).toMatch(/^line 8: /m);
    expect(r.stderr).toMatch(/^line 9: line longer than 65536 bytes/m);
    for (const l of lines) {
      try {
        const e = JSON.parse(l);
        if (typeof e?.eventId === 'string' && e.eventId.startsWith('imp-')) p.sent.set(e.eventId, e);
      } catch {}
    }
    await p.waitUntilSettled();
    await p.expectExactTotals();

    // Importing the same file again: all valid lines are duplicates of the ledger now.
    const again = await runCli(['events', 'import', '-'], p.env, `${good(1)}\n${good(2)}\n`);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout.trim())).toEqual({ lines: 2, accepted: 0, duplicates: 2, rejected: 0 });
  });

  it('an invalid line does not hide a later valid line with the same eventId, in its chunk or a later one', async () => {
    const line = (eventId: string, count: number) =>
      JSON.stringify({ eventId, openId: 'iu3', serviceId: 's1', serviceModeId: 'm1', count });
    // 5,000 lines go to the ledger per chunk: `late` comes back in the second chunk.
    const filler = Array.from({ length: 5_000 }, (_, i) => line(`fill-${i}`, 1));
    const lines = [
      line('early', 0),
      line('early', 4),
      line('late', -1),
      ...filler,
      line('late', 6),
      line('early', 4),
    ];
    const r = await runCli(['events', 'import', '-'], p.env, `${lines.join('\n')}\n`);
    expect(JSON.parse(r.stdout.trim()), r.stderr).toEqual({
      lines: 5_005,
      accepted: 5_002,
      duplicates: 1,
      rejected: 2,
    });
    expect(r.stderr).toMatch(/^line 1: count: /m);
    expect(r.stderr).toMatch(/^line 3: count: /m);
    for (const l of [...filler, line('early', 4), line('late', 6)]) {
      const e = JSON.parse(l);
      p.sent.set(e.eventId, e);
    }
    await p.waitUntilSettled();
    await p.expectExactTotals();
  });

  it('exits 2 for a missing file or bad usage', async () => {
    expect((await runCli(['events', 'import', '/nonexistent.ndjson'], p.env)).code).toBe(2);
    expect((await runCli(['events', 'import'], p.env)).code).toBe(2);
  });
});
