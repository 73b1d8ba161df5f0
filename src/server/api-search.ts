// GET /api/search?q=: the operator console's one box. q (trimmed; 1–128 printable
// ASCII characters, no spaces, like every identifier the meter keeps) is looked up
// exactly as a batch id, an out_trade_no, an eventId, a logid (Douyin's, on call
// attempts) and an openId; the answer lists what it names, each typed by `kind`
// with what the dashboard needs to open its view (src/ledger/search.ts).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { PrismaClient } from '../generated/prisma/client.js';
import { search } from '../ledger/search.js';
import { parseOr400 } from './errors.js';

export const searchQuery = z.strictObject({
  q: z
    .string({ error: 'required' })
    .trim()
    .min(1, 'must not be empty')
    .max(128, 'must be at most 128 characters')
    .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces'),
});

export function registerSearchRoutes(api: FastifyInstance, db: PrismaClient): void {
  api.get('/search', async (req) => {
    const { q } = parseOr400(searchQuery, req.query, 'query');
    // It may name a user: who looked is logged, as for a user lookup.
    req.log.info({ actor: req.operator, action: 'search', target: q }, 'operator read');
    return search(db, q);
  });
}
