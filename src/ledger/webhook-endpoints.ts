// Operators' webhook endpoints (webhook_endpoint) and their delivery logs, for the
// server's /api/webhook-endpoints. The worker's delivery statements are in
// notification-deliveries.ts.
import type { NotificationDelivery, PrismaClient, WebhookEndpoint } from '../generated/prisma/client.js';
import { cancelPendingDeliveries } from './notification-deliveries.js';

export interface EndpointInput {
  url: string;
  eventTypes: string[];
  description: string;
  lowBalanceThreshold: number;
}

export interface EndpointView {
  id: string;
  url: string;
  description: string;
  eventTypes: string[];
  lowBalanceThreshold: number;
  enabled: boolean;
  disabledReason: string | null;
  disabledAt: string | null;
  /** The first failed delivery since the last success (null: not failing). */
  failingSince: string | null;
  /** After a rotation with overlap: the previous secret is accepted until then. */
  previousSecretUntil: string | null;
  createdAt: string;
  updatedAt: string;
  deliveries: Record<'pending' | 'delivered' | 'failed' | 'cancelled', number>;
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

function endpointView(e: WebhookEndpoint, counts: Map<string, number>): EndpointView {
  return {
    id: String(e.id),
    url: e.url,
    description: e.description,
    eventTypes: e.eventTypes,
    lowBalanceThreshold: e.lowBalanceThreshold,
    enabled: e.enabled,
    disabledReason: e.disabledReason,
    disabledAt: iso(e.disabledAt),
    failingSince: iso(e.failingSince),
    previousSecretUntil:
      e.previousSecretUntil && e.previousSecretUntil > new Date()
        ? e.previousSecretUntil.toISOString()
        : null,
    createdAt: e.createdAt.toISOString(),
    updatedAt: e.updatedAt.toISOString(),
    deliveries: {
      pending: counts.get('pending') ?? 0,
      delivered: counts.get('delivered') ?? 0,
      failed: counts.get('failed') ?? 0,
      cancelled: counts.get('cancelled') ?? 0,
    },
  };
}

async function deliveryCounts(db: PrismaClient, ids: bigint[]): Promise<Map<bigint, Map<string, number>>> {
  const groups = await db.notificationDelivery.groupBy({
    by: ['endpointId', 'status'],
    where: { endpointId: { in: ids } },
    _count: { _all: true },
  });
  const out = new Map<bigint, Map<string, number>>();
  for (const g of groups) {
    const m = out.get(g.endpointId) ?? new Map<string, number>();
    m.set(g.status, g._count._all);
    out.set(g.endpointId, m);
  }
  return out;
}

export async function listEndpoints(db: PrismaClient): Promise<EndpointView[]> {
  const rows = await db.webhookEndpoint.findMany({ orderBy: { id: 'asc' } });
  const counts = await deliveryCounts(
    db,
    rows.map((r) => r.id),
  );
  return rows.map((r) => endpointView(r, counts.get(r.id) ?? new Map()));
}

export async function getEndpoint(db: PrismaClient, id: bigint): Promise<EndpointView | undefined> {
  const row = await db.webhookEndpoint.findUnique({ where: { id } });
  if (!row) return undefined;
  return endpointView(row, (await deliveryCounts(db, [id])).get(id) ?? new Map());
}

export async function createEndpoint(
  db: PrismaClient,
  input: EndpointInput,
  secret: string,
): Promise<EndpointView> {
  const row = await db.webhookEndpoint.create({ data: { ...input, secret } });
  return endpointView(row, new Map());
}

/**
 * Changes what is given; enabling an endpoint clears its failing spell and disabled
 * notice; disabling it cancels its pending deliveries.
 */
export async function updateEndpoint(
  db: PrismaClient,
  id: bigint,
  patch: Partial<EndpointInput> & { enabled?: boolean },
): Promise<EndpointView | undefined> {
  const found = await db.webhookEndpoint.findUnique({ where: { id } });
  if (!found) return undefined;
  const enabling = patch.enabled === true && !found.enabled;
  const disabling = patch.enabled === false && found.enabled;
  // balance.low's state is per threshold: a new threshold, or no balance.low, starts afresh.
  if (patch.lowBalanceThreshold !== undefined || patch.eventTypes !== undefined)
    await db.balanceLowState.deleteMany({ where: { endpointId: id } });
  await db.webhookEndpoint.update({
    where: { id },
    data: {
      ...patch,
      updatedAt: new Date(),
      ...(enabling ? { failingSince: null, disabledReason: null, disabledAt: null } : {}),
      ...(disabling ? { disabledReason: 'disabled by an operator', disabledAt: new Date() } : {}),
    },
  });
  if (disabling) await cancelPendingDeliveries(db, id);
  return getEndpoint(db, id);
}

/** A new secret; the old one stays valid for `keepOldForSec` (0: not at all). */
export async function rotateEndpointSecret(
  db: PrismaClient,
  id: bigint,
  secret: string,
  keepOldForSec: number,
): Promise<EndpointView | undefined> {
  const found = await db.webhookEndpoint.findUnique({ where: { id } });
  if (!found) return undefined;
  await db.webhookEndpoint.update({
    where: { id },
    data: {
      secret,
      previousSecret: keepOldForSec > 0 ? found.secret : null,
      previousSecretUntil: keepOldForSec > 0 ? new Date(Date.now() + keepOldForSec * 1000) : null,
      updatedAt: new Date(),
    },
  });
  return getEndpoint(db, id);
}

/** Deletes the endpoint with its delivery log; false when there was none. */
export async function deleteEndpoint(db: PrismaClient, id: bigint): Promise<boolean> {
  return (await db.webhookEndpoint.deleteMany({ where: { id } })).count > 0;
}

export interface DeliveryView {
  id: string;
  notificationId: string;
  type: string;
  status: string;
  attempts: number;
  redeliveries: number;
  lastAttemptAt: string | null;
  nextAttemptAt: string | null;
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  createdAt: string;
  notificationCreatedAt: string;
  data: unknown;
}

function deliveryView(
  d: NotificationDelivery & { notification: { type: string; createdAt: Date; data: unknown } },
) {
  return {
    id: String(d.id),
    notificationId: d.notificationId,
    type: d.notification.type,
    status: d.status,
    attempts: d.attempts,
    redeliveries: d.redeliveries,
    lastAttemptAt: iso(d.lastAttemptAt),
    nextAttemptAt: d.status === 'pending' ? iso(d.nextAttemptAt) : null,
    lastStatusCode: d.lastStatusCode,
    lastError: d.lastError,
    deliveredAt: iso(d.deliveredAt),
    createdAt: d.createdAt.toISOString(),
    notificationCreatedAt: d.notification.createdAt.toISOString(),
    data: d.notification.data,
  } satisfies DeliveryView;
}

/** An endpoint's deliveries, newest first; `cursor`: the last id of the previous page. */
export async function listDeliveries(
  db: PrismaClient,
  endpointId: bigint,
  o: { status?: string; limit: number; cursor?: bigint },
): Promise<{ items: DeliveryView[]; nextCursor: string | null }> {
  const rows = await db.notificationDelivery.findMany({
    where: {
      endpointId,
      ...(o.status ? { status: o.status } : {}),
      ...(o.cursor ? { id: { lt: o.cursor } } : {}),
    },
    include: { notification: { select: { type: true, createdAt: true, data: true } } },
    orderBy: { id: 'desc' },
    take: o.limit + 1,
  });
  const page = rows.slice(0, o.limit);
  return {
    items: page.map(deliveryView),
    nextCursor: rows.length > o.limit ? String(page[page.length - 1]!.id) : null,
  };
}

/**
 * Makes a delivery pending again (whatever its status), to be sent now with the
 * same notification id and body, in a new round with a retry schedule of its own
 * (so an old delivery is not given up after one attempt, and the previous round's
 * job no longer sends it); returns the round, or undefined when the endpoint has
 * no such delivery.
 */
export async function markForRedelivery(
  db: PrismaClient,
  endpointId: bigint,
  deliveryId: bigint,
): Promise<{ round: number; delivery: DeliveryView } | undefined> {
  const n = await db.$executeRaw`
    UPDATE notification_delivery
    SET status = 'pending', next_attempt_at = now(), redeliveries = redeliveries + 1, retry_from = now(),
        attempt_base = attempts
    WHERE id = ${deliveryId} AND endpoint_id = ${endpointId}`;
  if (n === 0) return undefined;
  const d = await db.notificationDelivery.findUniqueOrThrow({
    where: { id: deliveryId },
    include: { notification: { select: { type: true, createdAt: true, data: true } } },
  });
  return { round: d.redeliveries, delivery: deliveryView(d) };
}
