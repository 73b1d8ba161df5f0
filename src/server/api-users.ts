// GET /api/users/:openId: everything about one user on one page: batching keys,
// events by status, recent batches, charged totals per service mode, and the
// remaining times Douyin reports right now, for at most USER_SERVICES_PER_PAGE
// services a lookup (`?cursor=` the `nextCursor` of the previous one for more).
// GET /api/users/:openId/events: the user's events themselves, newest first, a page
// at a time.
import type { FastifyInstance } from 'fastify';
import type { PrismaClient } from '../generated/prisma/client.js';
import { latestLogids } from '../ledger/attempts.js';
import { eventsOfKey } from '../ledger/events.js';
import { eventsByStatus } from '../ledger/reports.js';
import { douyinCallTimeoutMs, douyinFailure, type OperatorDouyinApi } from './douyin-api.js';
import { parseOr400 } from './errors.js';
import { openIdPath, userEventsQuery, userQuery } from './params.js';
import { batchView, eventView, keyView } from './views.js';

export interface UserDeps {
  db: PrismaClient;
  douyin?: OperatorDouyinApi;
}

export const USER_RECENT_BATCHES = 20;
/**
 * Services whose purchases one lookup reads from Douyin. Each read takes a slot of
 * the deployment's DOUYIN_QPS, shared with charging: a user with keys for hundreds
 * of services must not cost seconds of it per lookup.
 */
export const USER_SERVICES_PER_PAGE = 20;

export function registerUserRoutes(api: FastifyInstance, d: UserDeps): void {
  const { db } = d;
  registerUserEventsRoute(api, db);

  api.get('/users/:openId', async (req) => {
    const { openId } = parseOr400(openIdPath, req.params, 'openId');
    const { serviceId: extraServiceId, cursor } = parseOr400(userQuery, req.query, 'query');
    // A read, but of one user's data and a Douyin call on their behalf: who looked is logged.
    req.log.info({ actor: req.operator, action: 'user.lookup', target: openId }, 'operator read');
    const keys = await db.meterKey.findMany({ where: { openId }, orderBy: { id: 'asc' } });
    const keyIds = keys.map((k) => k.id);
    const [events, batches, charged] = await Promise.all([
      eventsByStatus(db, keyIds),
      db.chargeBatch.findMany({
        where: { keyId: { in: keyIds } },
        include: { key: true },
        orderBy: { id: 'desc' },
        take: USER_RECENT_BATCHES,
      }),
      // Charged batches are the successful DecrUserRemainTimes calls (a partial
      // parent is 'partial'; its derived batches are the ones charged).
      db.chargeBatch.groupBy({
        by: ['keyId'],
        where: { keyId: { in: keyIds }, status: 'charged' },
        _sum: { count: true },
        _count: { _all: true },
      }),
    ]);
    const logids = await latestLogids(
      db,
      batches.map((b) => b.id),
    );
    const chargedByKey = new Map(charged.map((c) => [c.keyId, c]));
    // Services in id order, a page of them after the cursor.
    const after = [...new Set([...keys.map((k) => k.serviceId), ...(extraServiceId ? [extraServiceId] : [])])]
      .sort()
      .filter((id) => cursor === undefined || id > cursor);
    const serviceIds = after.slice(0, USER_SERVICES_PER_PAGE);
    const remaining = await Promise.all(
      serviceIds.map((serviceId) => liveRemaining(d.douyin, openId, serviceId)),
    );
    return {
      openId,
      keys: keys.map(keyView),
      events,
      recentBatches: batches.map((b) => batchView(b, logids.get(String(b.id)) ?? null)),
      charged: keys.map((k) => ({
        ...keyView(k),
        batches: chargedByKey.get(k.id)?._count._all ?? 0,
        uses: chargedByKey.get(k.id)?._sum.count ?? 0,
      })),
      remaining,
      // More services' remaining times: pass as ?cursor= (null when this was the last page).
      nextCursor: after.length > serviceIds.length ? serviceIds.at(-1)! : null,
    };
  });
}

/**
 * The user's events across their keys, newest first. One query per key, each an
 * index range scan of usage_event(key_id, seq), merged here: a single `key_id IN
 * (...) ORDER BY seq` would read and sort all of the user's events for every page.
 */
function registerUserEventsRoute(api: FastifyInstance, db: PrismaClient): void {
  api.get('/users/:openId/events', async (req) => {
    const { openId } = parseOr400(openIdPath, req.params, 'openId');
    const q = parseOr400(userEventsQuery, req.query, 'query');
    req.log.info({ actor: req.operator, action: 'user.events', target: openId }, 'operator read');
    const keys = await db.meterKey.findMany({ where: { openId } });
    const perKey = await Promise.all(
      keys.map((k) => eventsOfKey(db, k.id, { beforeSeq: q.cursor, status: q.status, limit: q.limit + 1 })),
    );
    const rows = perKey
      .flat()
      .sort((a, b) => (a.seq < b.seq ? 1 : a.seq > b.seq ? -1 : 0))
      .slice(0, q.limit + 1);
    const byId = new Map(keys.map((k) => [k.id, k]));
    const page = rows.slice(0, q.limit);
    return {
      items: page.map((e) => ({ ...eventView(e), key: keyView(byId.get(e.keyId)!) })),
      nextCursor: rows.length > q.limit ? String(page.at(-1)!.seq) : null,
    };
  });
}

/** One service's purchases as Douyin reports them now; a failure is shown, not thrown. */
async function liveRemaining(douyin: OperatorDouyinApi | undefined, openId: string, serviceId: string) {
  if (!douyin) {
    return {
      serviceId,
      error: { kind: 'unavailable', code: null, message: 'no Douyin client configured', logid: null },
    };
  }
  try {
    const r = await douyin.getUserServicePurchaseList(
      { openId, serviceId },
      { signal: AbortSignal.timeout(douyinCallTimeoutMs) },
    );
    return { serviceId, purchases: r.purchaseInfoList };
  } catch (err) {
    return { serviceId, error: douyinFailure(err) };
  }
}
