// Every step of a charge run that changes a key's lease or a batch commits with
// synchronous_commit on, even where the database's default is off: a trigger
// records the setting in force for each such row change.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DouyinError } from '../../src/douyin/index.js';
import { type ChargerHarness, interceptDecr, startChargerHarness } from './charger-harness.js';

let h: ChargerHarness;
beforeAll(async () => {
  h = await startChargerHarness('durability');
  const admin = new pg.Client({ connectionString: h.databaseUrl });
  await admin.connect();
  await admin.query(`
    ALTER DATABASE ${new URL(h.databaseUrl).pathname.slice(1)} SET synchronous_commit = off;
    CREATE TABLE commit_setting_log (tbl text, op text, setting text);
    CREATE FUNCTION log_commit_setting() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO commit_setting_log VALUES (TG_TABLE_NAME, TG_OP, current_setting('synchronous_commit'));
        RETURN NEW;
      END $$;
    -- Releasing a lease (until set to NULL) needs no durability: a lost release only delays the next run.
    CREATE TRIGGER lease_log AFTER INSERT OR UPDATE ON key_lease FOR EACH ROW
      WHEN (NEW.until IS NOT NULL) EXECUTE FUNCTION log_commit_setting();
    -- The key's batched_seq, moved by each batch formed.
    CREATE TRIGGER key_log AFTER UPDATE ON meter_key FOR EACH ROW EXECUTE FUNCTION log_commit_setting();
    CREATE TRIGGER batch_log AFTER INSERT OR UPDATE ON charge_batch FOR EACH ROW EXECUTE FUNCTION log_commit_setting();
  `);
  await admin.end();
  await h.db.$disconnect(); // new connections take the database's new default
});
afterAll(async () => h.close());

describe('charge runs commit durably', () => {
  it('takes leases, forms, claims and settles batches with synchronous_commit on', async () => {
    expect(
      (await h.db.$queryRaw<{ s: string }[]>`SELECT current_setting('synchronous_commit') AS s`)[0]!.s,
    ).toBe('off');
    const keyId = await h.seedKey('durable-a', [1, 2]);
    let failures = 1;
    const charger = h.charger({
      api: interceptDecr(h.client, () => {
        if (failures-- > 0) throw new DouyinError({ kind: 'transient', description: 'test: busy' });
      }),
    });
    await expect(charger.chargeKey(keyId)).rejects.toThrow(/busy/); // form, record a failed attempt
    expect(await charger.chargeKey(keyId)).toBe('charged'); // claim, settle
    const log = await h.db.$queryRaw<{ tbl: string; op: string; setting: string }[]>`
      SELECT tbl, op, setting FROM commit_setting_log`;
    expect(new Set(log.map((l) => `${l.tbl} ${l.op}`))).toEqual(
      new Set([
        'key_lease INSERT',
        'key_lease UPDATE',
        'meter_key UPDATE',
        'charge_batch INSERT',
        'charge_batch UPDATE',
      ]),
    );
    expect(log.filter((l) => l.setting !== 'on')).toEqual([]);
  });
});
