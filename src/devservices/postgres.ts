// A throwaway PostgreSQL cluster on a random port in a temporary directory, for
// tests, the benchmark and the demo. PostgreSQL refuses to run as root, so when we
// are root the cluster belongs to the `postgres` system user and is driven
// through runuser. It can be stopped and started again on the same port and data.
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { execFileAsync, findBinary, freePort, waitFor } from './process.js';

export interface PostgresServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** URL of another database on this server. */
  urlFor(database: string): string;
  start(): Promise<void>;
  /** Fast shutdown (clients are disconnected, like a restart in production). */
  stop(): Promise<void>;
  /** Immediate shutdown: no checkpoint, crash recovery on next start. */
  kill(): Promise<void>;
  destroy(): Promise<void>;
}

function pgBinDir(): string {
  const pgCtl = findBinary(
    'pg_ctl',
    ['17', '16', '15', '14', '13'].map((v) => `/usr/lib/postgresql/${v}/bin/pg_ctl`),
    'Install it with: apt-get install -y postgresql (or set DATABASE_URL to a running PostgreSQL).',
  );
  return pgCtl.slice(0, -'/pg_ctl'.length);
}

export interface PostgresOptions {
  port?: number;
  /**
   * Production durability (fsync, synchronous_commit, full_page_writes on), for
   * measurements and the demo. Default false: tests want speed, not disk safety.
   */
  durable?: boolean;
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const bin = pgBinDir();
  const port = options.port ?? (await freePort());
  const root = await mkdtemp(join(tmpdir(), 'um-pg-'));
  const dataDir = join(root, 'data');
  const isRoot = process.getuid?.() === 0;

  // Run a PostgreSQL binary, as the postgres user when we are root.
  const run = async (tool: string, args: string[]) => {
    const file = join(bin, tool);
    if (isRoot) return execFileAsync('runuser', ['-u', 'postgres', '--', file, ...args], { cwd: root });
    return execFileAsync(file, args, { cwd: root });
  };

  if (isRoot) {
    const { stdout } = await execFileAsync('id', ['-u', 'postgres']).catch(() => {
      throw new Error(
        'running as root needs a "postgres" system user (apt-get install -y postgresql creates it)',
      );
    });
    const { stdout: gid } = await execFileAsync('id', ['-g', 'postgres']);
    await chown(root, Number(stdout.trim()), Number(gid.trim()));
  }
  await chmod(root, 0o700);
  await run('initdb', [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--auth=trust',
    '-E',
    'UTF8',
    '--no-locale',
    '--no-sync',
  ]);

  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const serverOpts = [
    `-p ${port}`,
    `-k ${root}`,
    '-c listen_addresses=127.0.0.1',
    '-c max_connections=300',
    '-c shared_buffers=128MB',
    // Durability is not what the tests' throwaway clusters test; speed is welcome.
    ...(options.durable ? [] : ['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off']),
  ].join(' ');

  const ready = async () => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    try {
      await c.connect();
      await c.query('select 1');
      return true;
    } finally {
      await c.end().catch(() => {});
    }
  };

  const ctlStop = async (mode: 'fast' | 'immediate') => {
    await run('pg_ctl', ['-D', dataDir, '-m', mode, '-w', 'stop']).catch((err: { stderr?: string }) => {
      if (!String(err.stderr ?? '').includes('Is server running?')) throw err;
    });
  };

  const server: PostgresServer = {
    url,
    port,
    dir: root,
    urlFor: (database) => `postgresql://postgres@127.0.0.1:${port}/${database}`,
    async start() {
      await run('pg_ctl', ['-D', dataDir, '-l', join(root, 'server.log'), '-o', serverOpts, '-w', 'start']);
      await waitFor(`postgres on port ${port}`, ready);
    },
    stop: () => ctlStop('fast'),
    kill: () => ctlStop('immediate'),
    async destroy() {
      await ctlStop('immediate');
      await rm(root, { recursive: true, force: true });
    },
  };
  process.once('exit', () => {
    // Best effort on abrupt exit: an immediate stop, synchronously.
    try {
      const args = ['-D', dataDir, '-m', 'immediate', 'stop'];
      if (isRoot)
        execFileSync('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), ...args], { stdio: 'ignore' });
      else execFileSync(join(bin, 'pg_ctl'), args, { stdio: 'ignore' });
    } catch {}
  });
  await server.start();
  return server;
}
