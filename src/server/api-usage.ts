// GET /v1/usage?openId=&serviceId=&from=&to=&granularity=hour|day (API key): a
// user's uses of a service per hour or day (UTC) of arrival, per service mode, by
// what became of them (charged, overage, insufficient, dead, waiting), so an app
// can show its users their usage.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { PrismaClient } from '../generated/prisma/client.js';
import { usageBuckets } from '../ledger/reports.js';
import type { ApiKeys } from './auth.js';
import { HttpError, parseOr400 } from './errors.js';
import { identifier, instant } from './params.js';

/** The longest range a question may cover, per granularity (bounded work per request). */
const MAX_RANGE_MS = { hour: 31 * 86_400_000, day: 400 * 86_400_000 } as const;

export const usageQuery = z.strictObject({
  openId: identifier,
  serviceId: identifier,
  from: instant.optional(),
  to: instant.optional(),
  granularity: z.enum(['hour', 'day']).default('hour'),
});

export function registerUsageRoutes(app: FastifyInstance, d: { db: PrismaClient; apiKeys: ApiKeys }): void {
  app.get('/v1/usage', { onRequest: d.apiKeys.required }, async (req) => {
    const q = parseOr400(usageQuery, req.query, 'query');
    const to = q.to ?? new Date();
    const from = q.from ?? new Date(to.getTime() - (q.granularity === 'hour' ? 86_400_000 : 30 * 86_400_000));
    if (from >= to) throw new HttpError(400, 'invalid_request', '`from` must be before `to`');
    if (to.getTime() - from.getTime() > MAX_RANGE_MS[q.granularity])
      throw new HttpError(
        400,
        'invalid_request',
        `at most ${q.granularity === 'hour' ? 31 : 400} days a request`,
      );
    const keys = await d.db.meterKey.findMany({ where: { openId: q.openId, serviceId: q.serviceId } });
    const byId = new Map(keys.map((k) => [k.id, k]));
    const buckets = await usageBuckets(
      d.db,
      keys.map((k) => k.id),
      from,
      to,
      q.granularity,
    );
    return {
      openId: q.openId,
      serviceId: q.serviceId,
      granularity: q.granularity,
      from: from.toISOString(),
      to: to.toISOString(),
      buckets: buckets.map(({ keyId, start, ...uses }) => ({
        start: start.toISOString(),
        serviceModeId: byId.get(keyId)!.serviceModeId,
        isTestEnv: byId.get(keyId)!.isTestEnv,
        ...uses,
      })),
    };
  });
}
