// Money steps commit durably whatever the server's default. With
// synchronous_commit off (a common tuning), a commit can be acknowledged and then
// lost in a crash: a lost batch formation after its call would re-batch the same
// uses under a new out_trade_no and charge them twice; a lost first-attempt stamp
// would restart the idempotency-window clock. SET LOCAL applies to this
// transaction only, and works behind a transaction-mode connection pooler. A
// stronger setting already in force (remote_write, remote_apply) is kept.
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Sql } from './sql.js';

export async function durably<T>(db: PrismaClient, work: (tx: Sql) => Promise<T>): Promise<T> {
  return db.$transaction(async (tx) => {
    await tx.$queryRaw`
      SELECT set_config('synchronous_commit', 'on', true)
      WHERE current_setting('synchronous_commit') IN ('off', 'local')`;
    return work(tx);
  });
}
