import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { migrate, pendingMigrations, readMigrations } from '../src/db/migrate.js';
import { createPrisma } from '../src/db/prisma.js';
import { createTestDatabase } from './support/services.js';

describe('migrations', () => {
  it('brings an empty database to the current schema, records it like Prisma, and is idempotent', async () => {
    // A database with nothing in it (not cloned from the migrated template).
    const url = await createTestDatabase('mig');
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public');
    expect(await pendingMigrations(url)).toEqual((await readMigrations()).map((m) => m.name));

    const first = await migrate(url);
    expect(first.applied.length).toBeGreaterThan(0);
    const second = await migrate(url);
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied).toEqual(first.applied);
    expect(await pendingMigrations(url)).toEqual([]);

    const rows = await c.query(
      'SELECT migration_name, checksum, finished_at, applied_steps_count FROM "_prisma_migrations" ORDER BY migration_name',
    );
    const files = await readMigrations();
    expect(rows.rows.map((r) => [r.migration_name, r.checksum])).toEqual(
      files.map((m) => [m.name, m.checksum]),
    );
    expect(rows.rows.every((r) => r.finished_at && r.applied_steps_count === 1)).toBe(true);
    await c.end();

    // The generated Prisma client works against the migrated schema.
    const db = createPrisma(url);
    const key = await db.meterKey.create({
      data: { openId: 'o', serviceId: 's', serviceModeId: 'm', isTestEnv: false },
    });
    await db.usageEvent.create({ data: { eventId: 'e1', keyId: key.id, count: 3 } });
    expect(await db.usageEvent.findUnique({ where: { eventId: 'e1' } })).toMatchObject({
      count: 3,
      status: 'pending',
    });
    await db.$disconnect();
  });

  it('refuses to run when an applied migration was edited', async () => {
    const url = await createTestDatabase('mig2');
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(`UPDATE "_prisma_migrations" SET checksum = 'x'`);
    await c.end();
    await expect(migrate(url)).rejects.toThrow(/changed after it was applied/);
  });
});
