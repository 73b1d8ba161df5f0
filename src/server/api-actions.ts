// Operator actions: replaying dead batches, resolving them by hand, and the purchase
// tools. Each writes an operator_audit row with the signed-in operator as actor and
// a log line naming them. Cross-origin requests never get here (origin.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Prisma, PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { replayBatches } from '../metering/replay.js';
import { resolveBatches } from '../metering/resolve.js';
import type { RedisClient } from '../queue/redis-connection.js';
import {
  douyinCallTimeoutMs,
  douyinFailure,
  douyinHttpError,
  douyinRequired,
  type OperatorDouyinApi,
} from './douyin-api.js';
import { parseOr400 } from './errors.js';
import {
  deletePurchaseBody,
  emptyBody,
  idPath,
  insertPurchaseBody,
  purchaseListQuery,
  replayManyBody,
  resolveBody,
  resolveManyBody,
} from './params.js';

export interface ActionDeps {
  db: PrismaClient;
  redis: RedisClient;
  prefix: string;
  douyin?: OperatorDouyinApi;
  logger: Logger;
  /** Defaults: a one-day deadline, Douyin's one-month window. */
  replay?: { deadlineSec: number; idempotencyWindowSec: number };
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
    const result = await replayBatches({ ...d, ...d.replay }, { id }, actor);
    // replayBatches audits each batch it reopens; a refused replay is audited here.
    if (result.replayed.length === 0)
      await audit(actor, 'batch.replay', String(id), { skipped: result.skipped });
    else d.logger.info({ actor, action: 'batch.replay', target: String(id) }, 'operator action');
    return result;
  });

  api.post('/batches/replay-dead', async (req) => {
    parseOr400(emptyBody, req.body, 'body');
    const actor = actorOf(req);
    const result = await replayBatches({ ...d, ...d.replay }, { allDead: true }, actor);
    await audit(actor, 'batch.replay-dead', null, {
      replayed: result.replayed.length,
      skipped: result.skipped,
    });
    return result;
  });

  // The dashboard's selection: several batches replayed (or resolved) in one request,
  // each exactly as on its own (replayBatches and resolveBatches audit each batch they
  // act on); the refused ones are audited in one row.
  api.post('/batches/replay', async (req) => {
    const { ids } = parseOr400(replayManyBody, req.body, 'body');
    const actor = actorOf(req);
    const result = await replayBatches({ ...d, ...d.replay }, { ids }, actor);
    if (result.skipped.length > 0)
      await audit(actor, 'batch.replay-many', null, { asked: ids.map(String), skipped: result.skipped });
    return result;
  });

  api.post('/batches/resolve', async (req) => {
    const { ids, as } = parseOr400(resolveManyBody, req.body, 'body');
    const actor = actorOf(req);
    const result = await resolveBatches({ ...d, ...d.replay }, ids, as, actor);
    if (result.skipped.length > 0)
      await audit(actor, 'batch.resolve-many', null, { as, asked: ids.map(String), skipped: result.skipped });
    return result;
  });

  // An operator's decision after checking the user's remaining times on Douyin:
  // 'charged' records the batch as deducted, 'uncharged' as not (see resolve.ts).
  api.post('/batches/:id/resolve', async (req) => {
    const { id } = parseOr400(idPath, req.params, 'batch id');
    const { as } = parseOr400(resolveBody, req.body, 'body');
    const actor = actorOf(req);
    // resolveBatches audits each batch it resolves; a refused resolve is audited here, like a refused replay.
    const result = await resolveBatches({ ...d, ...d.replay }, [id], as, actor);
    if (result.resolved.length === 0)
      await audit(actor, 'batch.resolve', String(id), { as, skipped: result.skipped });
    else d.logger.info({ actor, action: 'batch.resolve', target: String(id), as }, 'operator action');
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
