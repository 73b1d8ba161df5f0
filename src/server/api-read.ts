// The dashboard's read-only operator API: status, batches, time series, Douyin health.

import type { FastifyInstance } from 'fastify';
import type { TokenStatus } from '../douyin/token.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import {
  type CallStats,
  callStats,
  latestLogids,
  type RecentCallError,
  recentCallErrors,
} from '../ledger/attempts.js';
import { eventsInRange } from '../ledger/events.js';
import { type MinutePoint, timeseries } from '../ledger/reports.js';
import { getMeterStatus, type MeterStatus } from '../metering/status.js';
import type { RedisClient } from '../queue/redis-connection.js';
import { TtlCache } from './cache.js';
import type { OperatorDouyinApi } from './douyin-api.js';
import { HttpError, parseOr400 } from './errors.js';
import { batchListQuery, douyinHealthQuery, idPath, timeseriesQuery } from './params.js';
import { attemptView, batchView, eventView } from './views.js';

export interface ReadDeps {
  db: PrismaClient;
  redis: RedisClient;
  prefix: string;
  /** For the token's state in the health view. */
  douyin?: OperatorDouyinApi;
}

/** Events shown with a batch (the total is given too). */
export const BATCH_EVENTS_SHOWN = 500;

export interface DouyinHealth extends CallStats {
  windowSec: number;
  errorRate: number | null;
  lastErrors: RecentCallError[];
  /** The shared access token; null without a Douyin client or while Redis does not answer. */
  token: TokenStatus | null;
}

export function registerReadRoutes(api: FastifyInstance, d: ReadDeps): void {
  const { db } = d;
  const statusCache = new TtlCache<MeterStatus>(1_000);
  const seriesCache = new TtlCache<MinutePoint[]>(1_500);
  const healthCache = new TtlCache<DouyinHealth>(1_000);

  api.get('/status', async () => {
    const status = await statusCache.get('status', () => getMeterStatus(d));
    return { ...status, now: new Date().toISOString() };
  });

  api.get('/batches', async (req) => {
    const q = parseOr400(batchListQuery, req.query, 'query');
    const rows = await db.chargeBatch.findMany({
      where: {
        status: q.status,
        id: q.cursor === undefined ? undefined : { lt: q.cursor },
        key: q.openId === undefined ? undefined : { openId: q.openId },
        createdAt: q.since || q.until ? { gte: q.since, lt: q.until } : undefined,
      },
      include: { key: true },
      orderBy: { id: 'desc' },
      take: q.limit + 1,
    });
    const page = rows.slice(0, q.limit);
    const logids = await latestLogids(
      db,
      page.map((b) => b.id),
    );
    return {
      items: page.map((b) => batchView(b, logids.get(String(b.id)) ?? null)),
      nextCursor: rows.length > q.limit ? String(page[page.length - 1]!.id) : null,
    };
  });

  api.get('/batches/:id', async (req) => {
    const { id } = parseOr400(idPath, req.params, 'batch id');
    const batch = await db.chargeBatch.findUnique({
      where: { id },
      include: { key: true, derived: { select: { id: true, status: true, count: true, outTradeNo: true } } },
    });
    if (!batch) throw new HttpError(404, 'not_found', `no batch ${id}`);
    const [events, attempts] = await Promise.all([
      // The batch's range of its key's sequence holds its events.
      batch.firstSeq === null || batch.lastSeq === null
        ? Promise.resolve([])
        : eventsInRange(db, batch.keyId, batch.firstSeq, batch.lastSeq, BATCH_EVENTS_SHOWN),
      db.callAttempt.findMany({ where: { batchId: id }, orderBy: { attemptNo: 'asc' } }),
    ]);
    const latest = [...attempts].reverse().find((a) => a.logid)?.logid ?? null;
    return {
      batch: {
        ...batchView(batch, latest),
        derived: batch.derived.map((x) => ({ ...x, id: String(x.id) })),
      },
      // event_count is stored with the batch; a derived (partial) batch has no events of its own.
      events: { total: batch.eventCount, shown: events.length, items: events.map(eventView) },
      attempts: attempts.map(attemptView),
    };
  });

  api.get('/timeseries', async (req) => {
    const { minutes } = parseOr400(timeseriesQuery, req.query, 'query');
    return { minutes, points: await seriesCache.get(String(minutes), () => timeseries(db, minutes)) };
  });

  api.get('/douyin-health', async (req) => {
    const { windowSec } = parseOr400(douyinHealthQuery, req.query, 'query');
    return healthCache.get(String(windowSec), async () => {
      const [stats, lastErrors, token] = await Promise.all([
        callStats(db, windowSec),
        recentCallErrors(db, windowSec, 10),
        d.douyin?.tokenStatus?.().catch(() => null) ?? null,
      ]);
      return {
        windowSec,
        ...stats,
        errorRate: stats.attempts > 0 ? stats.errors / stats.attempts : null,
        lastErrors,
        token,
      };
    });
  });
}
