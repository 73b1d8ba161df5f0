// Pausing and resuming charging deployment-wide (src/queue/charging-pause.ts):
// GET /api/charging, POST /api/charging/pause {reason?}, POST /api/charging/resume.
// Each change writes an operator_audit row naming the operator. Cross-origin
// requests never get here (origin.ts).
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { PrismaClient } from '../generated/prisma/client.js';
import { extendOpenBatchDeadlines } from '../ledger/operator-batches.js';
import type { Logger } from '../logger.js';
import { WINDOW_SAFE_FRACTION } from '../metering/decide.js';
import { DEFAULT_IDEMPOTENCY_WINDOW_SEC } from '../metering/replay.js';
import { NotReplicatedError } from '../producer/errors.js';
import { chargingState, pauseCharging, pauseReason, resumeCharging } from '../queue/charging-pause.js';
import type { ChargeJobData } from '../queue/queues.js';
import type { RedisClient } from '../queue/redis-connection.js';
import type { WaitReplicas } from '../queue/replication.js';
import { HttpError, parseOr400 } from './errors.js';
import { emptyBody } from './params.js';

export interface ChargingDeps {
  db: PrismaClient;
  redis: RedisClient;
  prefix: string;
  charge: Queue<ChargeJobData>;
  logger: Logger;
  /** REDIS_WAIT_REPLICAS: a pause or resume answers 503 not_replicated until replicas have it. */
  waitReplicas?: WaitReplicas;
  /** DOUYIN_IDEMPOTENCY_WINDOW_SEC: a resumed batch's deadline never passes 90% of it. Default one month. */
  idempotencyWindowSec?: number;
}

export const pauseBody = z.strictObject({ reason: pauseReason.optional() }).optional();

export function registerChargingRoutes(api: FastifyInstance, d: ChargingDeps): void {
  const audit = async (req: FastifyRequest, action: string, details: Record<string, string>) => {
    const actor = req.operator ?? 'unknown';
    await d.db.operatorAudit.create({ data: { actor, action, target: null, details } });
    d.logger.warn({ actor, action, details }, 'operator action');
  };

  // In force on the master, not confirmed by the replicas: audited as done, answered
  // 503 so that the operator knows a failover now could undo it (pressing again is safe).
  const unconfirmed = async (req: FastifyRequest, action: string, err: NotReplicatedError) => {
    await audit(req, action, { replicated: 'no' });
    return new HttpError(
      503,
      'not_replicated',
      `${err.message}; it is in force on the Redis master: press again`,
      {
        replicasWanted: err.wanted,
        replicasConfirmed: err.confirmed,
      },
    );
  };

  api.get('/charging', async () => chargingState(d.charge, d.redis, d.prefix));

  api.post('/charging/pause', async (req) => {
    const body = parseOr400(pauseBody, req.body ?? undefined, 'body');
    const state = await pauseCharging(
      d.charge,
      d.redis,
      d.prefix,
      { by: req.operator ?? 'unknown', reason: body?.reason },
      d.waitReplicas,
    ).catch(async (err: unknown) => {
      throw err instanceof NotReplicatedError ? await unconfirmed(req, 'charging.pause', err) : err;
    });
    await audit(req, 'charging.pause', body?.reason ? { reason: body.reason } : {});
    return state;
  });

  api.post('/charging/resume', async (req) => {
    parseOr400(emptyBody, req.body, 'body');
    const { state, pausedAt } = await resumeCharging(d.charge, d.redis, d.prefix, d.waitReplicas).catch(
      async (err: unknown) => {
        throw err instanceof NotReplicatedError ? await unconfirmed(req, 'charging.resume', err) : err;
      },
    );
    // The batches that waited get their retry time back (see extendOpenBatchDeadlines).
    const moved = pausedAt
      ? await extendOpenBatchDeadlines(
          d.db,
          (Date.now() - pausedAt.getTime()) / 1000,
          (d.idempotencyWindowSec ?? DEFAULT_IDEMPOTENCY_WINDOW_SEC) * WINDOW_SAFE_FRACTION,
        )
      : 0;
    await audit(req, 'charging.resume', { deadlinesMoved: String(moved) });
    return state;
  });
}
