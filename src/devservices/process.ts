// Small helpers shared by the throwaway Redis and PostgreSQL servers.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

export const execFileAsync = promisify(execFile);

/** A free TCP port on 127.0.0.1 (bound then released; good enough for tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** First existing path among candidates, or a clear error naming what to install. */
export function findBinary(name: string, candidates: string[], hint: string): string {
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error(`${name} not found (looked in ${candidates.join(', ')}). ${hint}`);
}

/** Polls `check` until it resolves true or the time runs out. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
