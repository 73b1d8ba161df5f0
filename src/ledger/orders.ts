// Order events from Douyin's webhook (douyin_order): one per message, kept with
// the buyer, the event and what the order's snapshot said.
import type { OrderEvent } from '../orders/order-message.js';
import type { Sql } from './db.js';

/** Records the order event of a message; an order event already recorded (by any message) is skipped. */
export async function recordOrder(
  tx: Sql,
  messageId: bigint,
  o: OrderEvent,
  receivedAt: Date,
): Promise<void> {
  await tx.$executeRaw`
    INSERT INTO douyin_order (message_id, order_id, open_id, order_event, service_id, service_mode_id,
                              remain_service_times, effective_time, expire_time, log_id, received_at)
    VALUES (${messageId}, ${o.orderId}, ${o.openId}, ${o.orderEvent}, ${o.serviceId}, ${o.serviceModeId},
            ${o.remainServiceTimes}, ${o.effectiveTime}::bigint, ${o.expireTime}::bigint, ${o.logId}, ${receivedAt})
    ON CONFLICT DO NOTHING`;
}

export interface OrderRow extends OrderEvent {
  id: bigint;
  messageId: bigint;
  receivedAt: Date;
}

/** A user's order events, newest first. */
export async function ordersOf(db: Sql, openId: string, limit: number): Promise<OrderRow[]> {
  const rows = await db.$queryRaw<
    (Omit<OrderRow, 'effectiveTime' | 'expireTime'> & {
      effectiveTime: bigint | null;
      expireTime: bigint | null;
    })[]
  >`
    SELECT id, message_id AS "messageId", order_id AS "orderId", open_id AS "openId", order_event AS "orderEvent",
           service_id AS "serviceId", service_mode_id AS "serviceModeId",
           remain_service_times AS "remainServiceTimes", effective_time AS "effectiveTime",
           expire_time AS "expireTime", log_id AS "logId", received_at AS "receivedAt"
    FROM douyin_order WHERE open_id = ${openId}
    ORDER BY received_at DESC, id DESC LIMIT ${limit}`;
  return rows.map((r) => ({
    ...r,
    effectiveTime: r.effectiveTime === null ? null : Number(r.effectiveTime),
    expireTime: r.expireTime === null ? null : Number(r.expireTime),
  }));
}

/** When the newest order event of this user's service mode arrived, if any (a balance snapshot older than it is stale). */
export async function newestOrderAt(
  db: Sql,
  k: { openId: string; serviceId: string; serviceModeId: string },
): Promise<Date | undefined> {
  const rows = await db.$queryRaw<{ at: Date | null }[]>`
    SELECT max(received_at) AS at FROM douyin_order
    WHERE open_id = ${k.openId} AND service_id = ${k.serviceId} AND service_mode_id = ${k.serviceModeId}`;
  return rows[0]?.at ?? undefined;
}
