// Starts a throwaway Redis and PostgreSQL for the whole run unless REDIS_URL /
// DATABASE_URL point at running ones, migrates a template database that each test
// file clones (test/support/services.ts), and removes everything afterwards.

import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../src/db/migrate.js';
import { startPostgres } from '../../src/devservices/postgres.js';
import { startRedis } from '../../src/devservices/redis.js';

const TEMPLATE = 'um_test_template';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    /** URL of the server's maintenance database; test files create their own databases. */
    postgresAdminUrl: string;
    templateDatabase: string;
  }
}

export default async function setup(project: TestProject) {
  const cleanups: (() => Promise<void>)[] = [];
  let redisUrl = process.env.REDIS_URL;
  let adminUrl = process.env.DATABASE_URL;
  const [redis, postgres] = await Promise.all([
    redisUrl ? undefined : startRedis({ appendOnly: false }),
    adminUrl ? undefined : startPostgres(),
  ]);
  if (redis) {
    redisUrl = redis.url;
    cleanups.push(() => redis.destroy());
  }
  if (postgres) {
    adminUrl = postgres.url;
    cleanups.push(() => postgres.destroy());
  }

  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE}`);
  await admin.query(`CREATE DATABASE ${TEMPLATE}`);
  await admin.end();
  const templateUrl = new URL(adminUrl!);
  templateUrl.pathname = `/${TEMPLATE}`;
  await migrate(templateUrl.toString());

  project.provide('redisUrl', redisUrl!);
  project.provide('postgresAdminUrl', adminUrl!);
  project.provide('templateDatabase', TEMPLATE);

  return async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
}
