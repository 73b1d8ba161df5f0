// GET /api/drift: the keys whose latest reconciliation found drift (Douyin's
// remaining times differ from what the ledger expected), newest first, with the
// evidence. Drift is reported here, never corrected.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { PrismaClient } from '../generated/prisma/client.js';
import { keysWithDrift } from '../ledger/drift.js';
import { parseOr400 } from './errors.js';

export const driftQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(500).default(100) });

export function registerDriftRoutes(api: FastifyInstance, db: PrismaClient): void {
  api.get('/drift', async (req) => {
    const { limit } = parseOr400(driftQuery, req.query, 'query');
    const rows = await keysWithDrift(db, limit);
    return {
      items: rows.map((d) => ({
        ...d,
        checkedAt: d.checkedAt.toISOString(),
        previousAsOf: d.previousAsOf.toISOString(),
      })),
    };
  });
}
