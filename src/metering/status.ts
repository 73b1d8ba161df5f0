// The meter's state at a glance: `npm run cli -- status`, /api/status, /metrics.

import type { Queue } from 'bullmq';
import type { PrismaClient } from '../generated/prisma/client.js';
import { eventsByStatus, oldestPendingEventAgeSec } from '../ledger/reports.js';
import { type ChargingState, chargingState } from '../queue/charging-pause.js';
import { createQueues, type EventsJobData, oldestEventsJobAgeSec } from '../queue/queues.js';
import type { RedisClient } from '../queue/redis-connection.js';

export interface MeterStatus {
  events: Record<string, number>;
  batches: Record<string, number>;
  queues: Record<string, Record<string, number>>;
  oldestPendingEventAgeSec: number | null;
  /** Whether an operator paused charging, who, when and why. */
  charging: ChargingState;
  /** Charging events an operator must look at (charge_alert): success answers for batches no longer open. */
  chargeAlerts: {
    total: number;
    latest: { id: string; at: string; kind: string; batchId: string | null; outTradeNo: string | null }[];
  };
}

export async function getMeterStatus(deps: {
  db: PrismaClient;
  redis: RedisClient;
  prefix: string;
}): Promise<MeterStatus> {
  const { db } = deps;
  const queues = createQueues(deps.redis, deps.prefix);
  try {
    const [events, batches, oldest, ev, ch, alertTotal, alerts, charging] = await Promise.all([
      eventsByStatus(db),
      db.chargeBatch.groupBy({ by: ['status'], _count: { _all: true } }),
      oldestUnchargedEventAgeSec(db, queues.events, deps.redis),
      queues.events.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'),
      queues.charge.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'),
      db.chargeAlert.count(),
      db.chargeAlert.findMany({ orderBy: { id: 'desc' }, take: 5 }),
      chargingState(queues.charge, deps.redis, deps.prefix),
    ]);
    return {
      events: Object.fromEntries(Object.entries(events).map(([status, c]) => [status, c.events])),
      batches: Object.fromEntries(batches.map((r) => [r.status, r._count._all])),
      queues: { events: ev, charge: ch },
      oldestPendingEventAgeSec: oldest,
      charging,
      chargeAlerts: {
        total: alertTotal,
        latest: alerts.map((a) => ({
          id: String(a.id),
          at: a.at.toISOString(),
          kind: a.kind,
          batchId: a.batchId === null ? null : String(a.batchId),
          outTradeNo: a.outTradeNo,
        })),
      },
    };
  } finally {
    await queues.close();
  }
}

/**
 * Age in seconds of the oldest event not yet in a batch, wherever it waits: in the
 * ledger (after its key's batched_seq), or still in Redis (no worker has written it yet, e.g. while
 * every worker is down). Null when none.
 */
export async function oldestUnchargedEventAgeSec(
  db: PrismaClient,
  events: Queue<EventsJobData>,
  redis: RedisClient,
): Promise<number | null> {
  const ages = (
    await Promise.all([oldestPendingEventAgeSec(db), oldestEventsJobAgeSec(events, redis)])
  ).filter((a): a is number => a !== null);
  return ages.length > 0 ? Math.max(...ages) : null;
}
