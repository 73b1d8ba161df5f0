// A throwaway redis-server on a random port in a temporary directory, for tests,
// the benchmark and the demo. It can be killed and restarted on the same port and
// data directory, which the fault tests use.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { findBinary, freePort, waitFor } from './process.js';

export interface RedisServerOptions {
  /** Append-only file with fsync every second, as in production. Default true. */
  appendOnly?: boolean;
  port?: number;
}

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Starts the server again after stop() or kill(), same port and data. */
  start(): Promise<void>;
  /** Graceful shutdown (SHUTDOWN, the AOF is flushed). */
  stop(): Promise<void>;
  /** SIGKILL: what a crash looks like. */
  kill(): Promise<void>;
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>;
}

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const bin = findBinary(
    'redis-server',
    ['/usr/bin/redis-server', '/usr/local/bin/redis-server'],
    'Install it with: apt-get install -y redis-server (or set REDIS_URL to a running Redis).',
  );
  const port = options.port ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), 'um-redis-'));
  const appendOnly = options.appendOnly ?? true;
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const ping = async () => {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      return (await r.ping()) === 'PONG';
    } finally {
      r.disconnect();
    }
  };

  const exited = (c: ChildProcess) =>
    new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      // The child is unref'd while it runs; waiting for its exit must keep the process alive.
      c.ref();
      c.once('exit', () => resolve());
    });

  const server: RedisServer = {
    url,
    port,
    dir,
    async start() {
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        appendOnly ? 'yes' : 'no',
        '--appendfsync',
        'everysec',
        '--daemonize',
        'no',
        '--protected-mode',
        'no',
        '--maxmemory-policy',
        'noeviction',
      ];
      const c = spawn(bin, args, { stdio: 'ignore' });
      child = c;
      c.unref();
      await waitFor(`redis-server on port ${port}`, ping);
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      c.kill('SIGTERM');
      await exited(c);
    },
    async kill() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      c.kill('SIGKILL');
      await exited(c);
    },
    async destroy() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  process.once('exit', () => child?.kill('SIGKILL'));
  await server.start();
  return server;
}
