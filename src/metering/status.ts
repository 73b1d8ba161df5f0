// The meter's state at a glance: `npm run cli -- status`, /api/status, /metrics.
import type { Redis } from 'ioredis';
import type { PrismaClient } from '../generated/prisma/client.js';
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
      db.usageEvent.groupBy({ by: ['status'], _count: { _all: true } }),
      db.chargeBatch.groupBy({ by: ['status'], _count: { _all: true } }),
      db.$queryRaw<{ age: number | null }[]>`
        SELECT extract(epoch FROM now() - min(received_at))::float8 AS age
        FROM (SELECT received_at FROM pending_event ORDER BY seq LIMIT 1) p`,
      queues.events.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'),
      queues.charge.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'),
    ]);
    const byStatus = (rows: { status: string; _count: { _all: number } }[]) =>
      Object.fromEntries(rows.map((r) => [r.status, r._count._all]));
    return {
      events: byStatus(events),
      batches: byStatus(batches),
      queues: { events: ev, charge: ch },
      oldestPendingEventAgeSec: oldest[0]?.age ?? null,
    };
  } finally {
    await queues.close();
  }
}
