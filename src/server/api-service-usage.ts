// GET /api/service-usage?window=hour|day|month[&bucketMinutes=1|5|15|60|1440][&serviceId=]
// (operators): per service and service mode, the uses received (events that reached the
// ledger) and the uses deducted on Douyin (successful DecrUserRemainTimes calls), per
// bucket over the last hour, day or 30 days (src/ledger/service-usage.ts and, for the
// 30 days, src/ledger/service-usage-month.ts have the SQL).
//
// Answer (ServiceUsageResponse):
//   { window: 'hour' | 'day' | 'month', bucketMinutes, from, to,
//     services: [{ serviceId, serviceModeId, isTestEnv,
//                  totals: { received, deducted },
//                  points: [{ t, received, deducted }] }] }
// - bucketMinutes defaults to 1 (per minute: 60 points an hour, 1,440 a day); the
//   dashboard asks for the day in 15-minute buckets. received/deducted are the uses
//   in each bucket (not a rate); t is the bucket's start (UTC, ISO); from is the
//   first bucket's start, to the end of the last one, the bucket now is in.
// - The month is the last 30 UTC days, one bucket per day (bucketMinutes 1440, the
//   only size it takes): completed days from usage_daily, the rest from the events.
// - A service mode appears when it received or had uses deducted in the window;
//   test-mode keys (isTestEnv) are a series of their own, after the live one.
// - serviceId keeps that service's modes only.
//
// The whole answer of a window and bucket is cached (2 s for the hour, which the
// overview polls every 2 s; 30 s for the day, whose newest bucket is 15 minutes or
// more; 60 s for the month, a bucket a day, which reads up to two days of events): one query however many dashboards look, and a serviceId is answered from the
// same cached answer (the events of the window are read whatever the service), so the
// cache holds at most one entry per window and bucket size.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { PrismaClient } from '../generated/prisma/client.js';
import {
  type ServiceUsage,
  type ServiceUsageSeries,
  serviceUsage,
  USAGE_WINDOWS,
  type UsageWindow,
} from '../ledger/service-usage.js';
import { serviceUsageMonth } from '../ledger/service-usage-month.js';
import { TtlCache } from './cache.js';
import { parseOr400 } from './errors.js';
import { identifier } from './params.js';

export const serviceUsageQuery = z
  .strictObject({
    window: z.enum(['hour', 'day', 'month']).default('hour'),
    /** Minutes a point covers; default 1 (1440 for the month, the only size it takes). */
    bucketMinutes: z.enum(['1', '5', '15', '60', '1440']).optional(),
    /** Only this service's modes. */
    serviceId: identifier.optional(),
  })
  .superRefine((q, ctx) => {
    // The month is per day; an hour or day per day would be one point or none.
    const month = q.window === 'month';
    if (month ? (q.bucketMinutes ?? '1440') !== '1440' : q.bucketMinutes === '1440') {
      ctx.addIssue({
        code: 'custom',
        path: ['bucketMinutes'],
        message: month ? 'the month takes 1440 only' : '1440 is for the month only',
      });
    }
  })
  .transform((q) => ({
    ...q,
    bucketMinutes: Number(q.bucketMinutes ?? (q.window === 'month' ? '1440' : '1')),
  }));

export interface ServiceUsageResponse {
  window: UsageWindow;
  bucketMinutes: number;
  from: string;
  to: string;
  services: ServiceUsageSeries[];
}

/** How long an answer is reused, per window. */
const TTL_MS: Record<UsageWindow, number> = { hour: 2_000, day: 30_000, month: 60_000 };

export function registerServiceUsageRoutes(api: FastifyInstance, d: { db: PrismaClient }): void {
  const caches = {
    hour: new TtlCache<ServiceUsage>(TTL_MS.hour),
    day: new TtlCache<ServiceUsage>(TTL_MS.day),
    month: new TtlCache<ServiceUsage>(TTL_MS.month),
  };

  api.get('/service-usage', async (req): Promise<ServiceUsageResponse> => {
    const q = parseOr400(serviceUsageQuery, req.query, 'query');
    const usage = await caches[q.window].get(String(q.bucketMinutes), () =>
      q.window === 'month'
        ? serviceUsageMonth(d.db)
        : serviceUsage(d.db, USAGE_WINDOWS[q.window], q.bucketMinutes),
    );
    return {
      window: q.window,
      bucketMinutes: usage.bucketMinutes,
      from: usage.from,
      to: usage.to,
      services:
        q.serviceId === undefined
          ? usage.services
          : usage.services.filter((s) => s.serviceId === q.serviceId),
    };
  });
}
