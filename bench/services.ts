// The services a benchmark runs on: the Redis and PostgreSQL given by REDIS_URL /
// DATABASE_URL, or throwaway ones (Redis with its append-only file, PostgreSQL as
// durable as asked), and a fresh migrated database on that PostgreSQL. Shared by
// bench/bench.ts and bench/scale.ts.
import pg from 'pg';
import { migrate } from '../src/db/migrate.js';
import { startPostgres } from '../src/devservices/postgres.js';
import { startRedis } from '../src/devservices/redis.js';

export interface BenchServices {
  redisUrl: string;
  /** The fresh, migrated database. */
  databaseUrl: string;
  /** Drops the database, then stops the throwaway servers. */
  close(): Promise<void>;
}

export async function startBenchServices(o: { durable: boolean; label: string }): Promise<BenchServices> {
  const cleanups: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  try {
    let redisUrl = process.env.REDIS_URL;
    let adminUrl = process.env.DATABASE_URL;
    if (!redisUrl) {
      const r = await startRedis({ appendOnly: true });
      cleanups.push(() => r.destroy());
      redisUrl = r.url;
    }
    if (!adminUrl) {
      const p = await startPostgres({ durable: o.durable });
      cleanups.push(() => p.destroy());
      adminUrl = p.url;
    }
    const dbName = `um_${o.label}_${Date.now()}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    cleanups.push(async () => {
      await admin.query(`DROP DATABASE ${dbName} WITH (FORCE)`).catch(() => {});
      await admin.end();
    });
    const dbUrl = new URL(adminUrl);
    dbUrl.pathname = `/${dbName}`;
    const databaseUrl = dbUrl.toString();
    await migrate(databaseUrl);
    return { redisUrl, databaseUrl, close };
  } catch (err) {
    await close();
    throw err;
  }
}
