// Pausing and resuming charging deployment-wide (src/queue/charging-pause.ts):
// GET /api/charging, POST /api/charging/pause {reason?}, POST /api/charging/resume.
// Each change writes an operator_audit row naming the operator. Cross-origin
// requests never get here (origin.ts).
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { chargingState, pauseCharging, resumeCharging } from '../queue/charging-pause.js';
import type { ChargeJobData } from '../queue/queues.js';
import { parseOr400 } from './errors.js';
import { emptyBody } from './params.js';

export interface ChargingDeps {
  db: PrismaClient;
  redis: Redis;
  prefix: string;
  charge: Queue<ChargeJobData>;
  logger: Logger;
}

export const pauseBody = z
  .strictObject({
    reason: z
      .string()
      .max(500, 'must be at most 500 characters')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
      .regex(/^[^\x00-\x1f\x7f]*$/, 'must not contain control characters')
      .optional(),
  })
  .optional();

export function registerChargingRoutes(api: FastifyInstance, d: ChargingDeps): void {
  const audit = async (req: FastifyRequest, action: string, details: Record<string, string>) => {
    const actor = req.operator ?? 'unknown';
    await d.db.operatorAudit.create({ data: { actor, action, target: null, details } });
    d.logger.warn({ actor, action, details }, 'operator action');
  };

  api.get('/charging', async () => chargingState(d.charge, d.redis, d.prefix));

  api.post('/charging/pause', async (req) => {
    const body = parseOr400(pauseBody, req.body ?? undefined, 'body');
    const state = await pauseCharging(d.charge, d.redis, d.prefix, {
      by: req.operator ?? 'unknown',
      reason: body?.reason,
    });
    await audit(req, 'charging.pause', body?.reason ? { reason: body.reason } : {});
    return state;
  });

  api.post('/charging/resume', async (req) => {
    parseOr400(emptyBody, req.body, 'body');
    const state = await resumeCharging(d.charge, d.redis, d.prefix);
    await audit(req, 'charging.resume', {});
    return state;
  });
}
