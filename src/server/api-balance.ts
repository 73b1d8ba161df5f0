// GET /v1/users/:openId/balance: what an app service asks before it delivers a use
// (API key, like /v1/events). The balance model is src/balances/balance.ts; a
// snapshot older than METER_BALANCE_MAX_AGE_SEC is read again from Douyin first,
// unless ?cached=1.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { type Balance, balanceOf, type PurchaseListReader } from '../balances/balance.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { ApiKeys } from './auth.js';
import { parseOr400 } from './errors.js';
import { identifier, openIdPath } from './params.js';

const flag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

export const balanceQuery = z.strictObject({
  serviceId: identifier,
  serviceModeId: identifier,
  isTestEnv: flag.default(false),
  cached: flag.default(false),
});

export interface BalanceDeps {
  db: PrismaClient;
  apiKeys: ApiKeys;
  douyin?: PurchaseListReader;
  maxAgeSec: number;
}

export function balanceView(b: Balance) {
  return { ...b, asOf: b.asOf?.toISOString() ?? null };
}

export function registerBalanceRoutes(app: FastifyInstance, d: BalanceDeps): void {
  // Concurrent questions about one key share one answer: an app asking before every
  // use must not cost one purchase-list read per request while the snapshot is stale.
  const inFlight = new Map<string, Promise<Balance>>();
  app.get(
    '/v1/users/:openId/balance',
    {
      onRequest: d.apiKeys.required,
    },
    async (req) => {
      const { openId } = parseOr400(openIdPath, req.params, 'openId');
      const q = parseOr400(balanceQuery, req.query, 'query');
      const key = JSON.stringify([openId, q.serviceId, q.serviceModeId, q.isTestEnv, q.cached]);
      let balance = inFlight.get(key);
      if (!balance) {
        balance = balanceOf(
          d.db,
          { openId, serviceId: q.serviceId, serviceModeId: q.serviceModeId, isTestEnv: q.isTestEnv },
          { maxAgeSec: d.maxAgeSec, cached: q.cached, douyin: d.douyin },
        ).finally(() => inFlight.delete(key));
        inFlight.set(key, balance);
      }
      return balanceView(await balance);
    },
  );
}
