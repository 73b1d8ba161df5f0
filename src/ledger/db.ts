// What the ledger's statements run on: the Prisma client or one of its
// transactions. The ledger's SQL lives in this folder, one file per concern
// (keys, events, batches, attempts, reports); hot paths use $queryRaw because
// bulk inserts with unnest() and single-statement state changes are an order of
// magnitude faster than createMany/updateMany (figures in docs/performance.md).
import type { PrismaClient } from '../generated/prisma/client.js';

export type Sql = Pick<PrismaClient, '$queryRaw' | '$executeRaw'>;
