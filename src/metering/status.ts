// The meter's state at a glance: `npm run cli -- status`, /api/status, /metrics.
import type { Redis } from 'ioredis';
import type { PrismaClient } from '../generated/prisma/client.js';
import { eventsByStatus, oldestPendingEventAgeSec } from '../ledger/sql.js';
import { createQueues } from '../queue/queues.js';

export interface MeterStatus {
  events: Record<string, number>;
  batches: Record<string, number>;
  queues: Record<string, Record<string, number>>;
  oldestPendingEventAgeSec: number | null;
}

export async function getMeterStatus(deps: {
  db: PrismaClient;
  redis: Redis;
  prefix: string;
}): Promise<MeterStatus> {
  const { db } = deps;
  const queues = createQueues(deps.redis, deps.prefix);
  try {
    const [events, batches, oldest, ev, ch] = await Promise.all([
      eventsByStatus(db),
      db.chargeBatch.groupBy({ by: ['status'], _count: { _all: true } }),
      oldestPendingEventAgeSec(db),
      queues.events.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'),
      queues.charge.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'),
    ]);
    return {
      events,
      batches: Object.fromEntries(batches.map((r) => [r.status, r._count._all])),
      queues: { events: ev, charge: ch },
      oldestPendingEventAgeSec: oldest,
    };
  } finally {
    await queues.close();
  }
}
