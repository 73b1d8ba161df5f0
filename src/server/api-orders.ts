// GET /api/orders?openId=: a user's order events from Douyin's webhook, newest
// first (the dashboard's orders timeline on the user page).
import type { FastifyInstance } from 'fastify';
import type { PrismaClient } from '../generated/prisma/client.js';
import { ordersOf } from '../ledger/orders.js';
import { parseOr400 } from './errors.js';
import { ordersQuery } from './params.js';

export function registerOrderRoutes(api: FastifyInstance, db: PrismaClient): void {
  api.get('/orders', async (req) => {
    const { openId, limit } = parseOr400(ordersQuery, req.query, 'query');
    req.log.info({ actor: req.operator, action: 'orders.list', target: openId }, 'operator read');
    const orders = await ordersOf(db, openId, limit);
    return {
      items: orders.map((o) => ({
        ...o,
        id: String(o.id),
        messageId: String(o.messageId),
        receivedAt: o.receivedAt.toISOString(),
      })),
    };
  });
}
