// The child processes of a multi-process benchmark (workers, servers, the simulator):
// each writes its output to its own log file (so --json output stays clean and a
// failure can show the tail), is waited for until it answers over HTTP, reports its
// peak RSS, and is stopped with SIGTERM (SIGKILL after a grace period) at the end.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { USER_HZ } from './cpu.js';

export interface Child {
  name: string;
  proc: ChildProcess;
  logFile: string;
}

/** Starts `node <args>` with `env`, its stdout and stderr in `<logDir>/<name>.log`. */
export function spawnNode(
  name: string,
  args: string[],
  o: { cwd: string; env: NodeJS.ProcessEnv; logDir: string },
): Child {
  const logFile = join(o.logDir, `${name}.log`);
  const out = createWriteStream(logFile);
  const proc = spawn(process.execPath, args, { cwd: o.cwd, env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout?.pipe(out);
  proc.stderr?.pipe(out);
  return { name, proc, logFile };
}

function exited(c: Child): boolean {
  return c.proc.exitCode !== null || c.proc.signalCode !== null;
}

/** Resolves once `url` answers 2xx; fails early if the child exits, naming its log. */
export async function waitUntilAnswering(c: Child, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited(c)) throw new Error(`${c.name} exited (${c.proc.exitCode ?? c.proc.signalCode}):\n${tail(c)}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
      async (r) => {
        await r.arrayBuffer();
        return r.ok;
      },
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${c.name} did not answer ${url} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Peak resident memory (VmHWM) of a running child, MB; undefined once it is gone. */
export function peakRssMb(c: Child): number | undefined {
  try {
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${c.proc.pid}/status`, 'utf8'));
    return hwm ? Math.round(Number(hwm[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a running child has used so far; undefined once it is gone. */
export function cpuSeconds(c: Child): number | undefined {
  try {
    // Fields after the command name, which is in parentheses and may hold spaces.
    const stat = readFileSync(`/proc/${c.proc.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / USER_HZ; // utime, stime
  } catch {
    return undefined;
  }
}

/** The last lines of a child's log. */
export function tail(c: Child, lines = 20): string {
  try {
    return readFileSync(c.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** SIGTERM to each (they finish in-flight work), SIGKILL to those still running after `graceMs`. */
export async function stopChildren(children: Child[], graceMs = 10_000): Promise<void> {
  const running = children.filter((c) => !exited(c));
  const gone = running.map((c) => new Promise<void>((resolve) => c.proc.once('exit', () => resolve())));
  for (const c of running) c.proc.kill('SIGTERM');
  const all = Promise.all(gone);
  const grace = new AbortController();
  const timedOut = await Promise.race([
    all.then(() => false),
    sleep(graceMs, undefined, { signal: grace.signal }).then(
      () => true,
      () => false,
    ),
  ]);
  grace.abort(); // no timer left behind
  if (!timedOut) return;
  for (const c of running) if (!exited(c)) c.proc.kill('SIGKILL');
  await all;
}
