// Per-test-file access to the real services started by global-setup.ts: a fresh
// migrated database cloned from the template, a unique Redis key prefix.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

export function redisUrl(): string {
  return inject('redisUrl');
}

/** A unique prefix so test files never share Redis keys or queues. */
export function uniquePrefix(label = 't'): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/** Creates a new database from the migrated template and returns its URL. */
export async function createTestDatabase(label = 't'): Promise<string> {
  const adminUrl = inject('postgresAdminUrl');
  const name = `um_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject('templateDatabase')}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
