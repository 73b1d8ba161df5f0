// The database checks of /readyz: the database answers, and which migrations are applied.
import type { Sql } from './db.js';

/** `select 1`: the database answers. */
export async function selectOne(db: Sql): Promise<void> {
  await db.$queryRaw`SELECT 1`;
}

/**
 * Names of the migrations recorded as applied (as src/db/migrate.ts and Prisma record
 * them), or null while the table does not exist. Over the pool: /readyz opens no
 * connection of its own.
 */
export async function appliedMigrations(db: Sql): Promise<Set<string> | null> {
  const [table] = await db.$queryRaw<{ t: string | null }[]>`
    SELECT to_regclass('"_prisma_migrations"')::text AS t`;
  if (!table?.t) return null;
  const rows = await db.$queryRaw<{ migration_name: string }[]>`
    SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`;
  return new Set(rows.map((r) => r.migration_name));
}
