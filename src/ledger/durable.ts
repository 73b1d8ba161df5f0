// Money steps commit durably whatever the server's default. With
// synchronous_commit off (a common tuning), a commit can be acknowledged and then
// lost in a crash: a lost batch formation after its call would re-batch the same
// uses under a new out_trade_no and charge them twice; a lost first-attempt stamp
// would restart the idempotency-window clock. SET LOCAL applies to this
// transaction only, and works behind a transaction-mode connection pooler. A
// stronger setting already in force (remote_write, remote_apply) is kept.
import { Prisma } from '../generated/prisma/client.js';
import type { Sql } from './db.js';
import type { Ledger } from './pg-ledger.js';

export async function durably<T>(db: Ledger, work: (tx: Sql) => Promise<T>): Promise<T> {
  return db.$transaction(async (tx) => {
    await tx.$queryRaw`${DURABLE_COMMIT}`;
    return work(tx);
  });
}

/**
 * The same for one statement on its own (its own transaction), at no extra round
 * trip: a CTE `WITH durable AS (${DURABLE_COMMIT})` that the statement references.
 * set_config(..., true) lasts until the statement's transaction commits, and the
 * commit reads the setting then (tested in test/ledger/durable.test.ts).
 */
export const DURABLE_COMMIT = Prisma.sql`
  SELECT set_config('synchronous_commit', 'on', true) AS durable
  WHERE current_setting('synchronous_commit') IN ('off', 'local')`;
