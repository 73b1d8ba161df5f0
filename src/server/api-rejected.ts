// GET /api/rejected-events: how many events the ledger refused, and the newest of
// them with their reason (the dashboard's "Rejected events" card).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { PrismaClient } from '../generated/prisma/client.js';
import { rejectedEventSummary } from '../ledger/rejected-events.js';
import { parseOr400 } from './errors.js';

export const query = z.strictObject({ limit: z.coerce.number().int().min(1).max(100).default(20) });

export function registerRejectedRoutes(api: FastifyInstance, d: { db: PrismaClient }): void {
  api.get('/rejected-events', async (req) => {
    const q = parseOr400(query, req.query, 'query');
    return rejectedEventSummary(d.db, q.limit);
  });
}
