// One throwaway Redis process (a data node or a sentinel) for the Sentinel and
// Cluster test set-ups: spawned on a loopback port, killed with it when this
// process exits, and asked one-off commands over a short-lived connection.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { findBinary } from './process.js';

export interface RedisNodeProcess {
  readonly port: number;
  readonly child: ChildProcess;
  /** SIGKILL: what a crash looks like. Resolves once the process is gone. */
  kill(): Promise<void>;
  readonly alive: boolean;
}

export function redisServerBinary(): string {
  return findBinary(
    'redis-server',
    ['/usr/bin/redis-server', '/usr/local/bin/redis-server'],
    'Install it with: apt-get install -y redis-server.',
  );
}

/** redis-sentinel, or redis-server in sentinel mode when the package is missing. */
export function sentinelCommand(): { bin: string; args: string[] } {
  for (const bin of ['/usr/bin/redis-sentinel', '/usr/local/bin/redis-sentinel'])
    if (existsSync(bin)) return { bin, args: [] };
  return { bin: redisServerBinary(), args: ['--sentinel'] };
}

/** Spawns `bin args` (stdout/stderr ignored); the child dies with this process. */
export function spawnRedisNode(bin: string, args: string[], port: number): RedisNodeProcess {
  const child = spawn(bin, args, { stdio: 'ignore' });
  child.unref();
  const onExit = () => child.kill('SIGKILL');
  process.once('exit', onExit);
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => process.removeListener('exit', onExit));
  return {
    port,
    child,
    get alive() {
      return !gone();
    },
    async kill() {
      if (gone()) return;
      child.ref(); // waiting for its exit keeps this process alive
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** One command on a fresh connection to 127.0.0.1:port, closed after. */
export async function redisCommand(
  port: number,
  args: (string | number)[],
  password?: string,
  timeoutMs = 2_000,
): Promise<unknown> {
  const r = new Redis({
    host: '127.0.0.1',
    port,
    password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    enableReadyCheck: false,
  });
  r.on('error', () => {});
  try {
    await r.connect();
    const [name, ...rest] = args;
    return await r.call(String(name), ...rest);
  } finally {
    r.disconnect();
  }
}

/** The `field:value` lines of an INFO answer. */
export function parseInfo(info: unknown): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of String(info).split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out.set(line.slice(0, i), line.slice(i + 1));
  }
  return out;
}
