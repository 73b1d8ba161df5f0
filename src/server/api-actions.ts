// Operator actions: replaying dead batches and the purchase tools. Each writes an
// operator_audit row with the signed-in operator as actor and a log line naming them.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Prisma, PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { replayBatches } from '../metering/replay.js';
import {
  douyinCallTimeoutMs,
  douyinFailure,
  douyinHttpError,
  douyinRequired,
  type OperatorDouyinApi,
} from './douyin-api.js';
import { parseOr400 } from './errors.js';
import { deletePurchaseBody, emptyBody, idPath, insertPurchaseBody, purchaseListQuery } from './params.js';

export interface ActionDeps {
  db: PrismaClient;
  redis: Redis;
  prefix: string;
  douyin?: OperatorDouyinApi;
  logger: Logger;
}

export function registerActionRoutes(api: FastifyInstance, d: ActionDeps): void {
  const { db } = d;
  const actorOf = (req: FastifyRequest) => req.operator ?? 'unknown';

  const audit = async (
    actor: string,
    action: string,
    target: string | null,
    details: Prisma.InputJsonValue,
  ) => {
    await db.operatorAudit.create({ data: { actor, action, target, details } });
    d.logger.info({ actor, action, target, details }, 'operator action');
  };

  api.post('/batches/:id/replay', async (req) => {
    const { id } = parseOr400(idPath, req.params, 'batch id');
    parseOr400(emptyBody, req.body, 'body');
    const actor = actorOf(req);
    const result = await replayBatches(d, { id }, actor);
    // replayBatches audits each batch it reopens; a refused replay is audited here.
    if (result.replayed.length === 0)
      await audit(actor, 'batch.replay', String(id), { skipped: result.skipped });
    else d.logger.info({ actor, action: 'batch.replay', target: String(id) }, 'operator action');
    return result;
  });

  api.post('/batches/replay-dead', async (req) => {
    parseOr400(emptyBody, req.body, 'body');
    const actor = actorOf(req);
    const result = await replayBatches(d, { allDead: true }, actor);
    await audit(actor, 'batch.replay-dead', null, {
      replayed: result.replayed.length,
      skipped: result.skipped,
    });
    return result;
  });

  api.get('/purchases', async (req) => {
    const q = parseOr400(purchaseListQuery, req.query, 'query');
    req.log.info({ actor: actorOf(req), action: 'purchase.list', target: q.openId }, 'operator read');
    try {
      return await douyinRequired(d.douyin).getUserServicePurchaseList(q, {
        signal: AbortSignal.timeout(douyinCallTimeoutMs),
      });
    } catch (err) {
      throw douyinHttpError(err);
    }
  });

  api.post('/purchases/insert', async (req) => {
    const body = parseOr400(insertPurchaseBody, req.body, 'purchase');
    const douyin = douyinRequired(d.douyin);
    return auditedCall(actorOf(req), 'purchase.insert', body, () =>
      douyin.insertPurchaseInfo(body, { signal: AbortSignal.timeout(douyinCallTimeoutMs) }),
    );
  });

  api.post('/purchases/delete', async (req) => {
    const body = parseOr400(deletePurchaseBody, req.body, 'purchase');
    const douyin = douyinRequired(d.douyin);
    return auditedCall(actorOf(req), 'purchase.delete', body, () =>
      douyin.deletePurchaseInfo(body, { signal: AbortSignal.timeout(douyinCallTimeoutMs) }),
    );
  });

  // The audit row records the outcome (with the logid) whether the call worked or not.
  async function auditedCall(
    actor: string,
    action: string,
    input: { openId: string; outTradeNo: string },
    call: () => Promise<object>,
  ): Promise<object> {
    const target = `${input.openId}/${input.outTradeNo}`;
    try {
      const result = await call();
      await audit(actor, action, target, { input, outcome: 'ok', result } as Prisma.InputJsonObject);
      return result;
    } catch (err) {
      await audit(actor, action, target, {
        input,
        outcome: 'error',
        error: { ...douyinFailure(err) },
      } as Prisma.InputJsonObject);
      throw douyinHttpError(err);
    }
  }
}
