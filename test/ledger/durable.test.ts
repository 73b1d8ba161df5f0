// Money steps commit with synchronous_commit on, whatever the server's or the
// database's default: an acknowledged batch formation must survive a crash.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { durably } from '../../src/ledger/durable.js';
import { createTestDatabase } from '../support/services.js';

let db: PrismaClient;
beforeAll(async () => {
  const url = await createTestDatabase('durable');
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  // A deployment tuned for speed: commits are acknowledged before they are on disk.
  await admin.query(`ALTER DATABASE ${new URL(url).pathname.slice(1)} SET synchronous_commit = off`);
  await admin.end();
  db = createPrisma(url);
});
afterAll(async () => db.$disconnect());

const setting = async (q: Pick<PrismaClient, '$queryRaw'>) =>
  (await q.$queryRaw<{ s: string }[]>`SELECT current_setting('synchronous_commit') AS s`)[0]!.s;

describe('durably', () => {
  it('runs its transaction with synchronous_commit on, and leaves the connection as it was', async () => {
    expect(await setting(db)).toBe('off');
    expect(await durably(db, (tx) => setting(tx))).toBe('on');
    expect(await setting(db)).toBe('off');
  });

  it('rolls back everything when the work fails', async () => {
    await expect(
      durably(db, async (tx) => {
        await tx.$executeRaw`INSERT INTO operator_audit (actor, action) VALUES ('t', 'durable.test')`;
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await db.operatorAudit.count({ where: { action: 'durable.test' } })).toBe(0);
  });
});
