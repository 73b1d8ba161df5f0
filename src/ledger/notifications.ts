// The notification outbox's dispatch (docs/notifications.md): notifications written
// by the state changes' triggers become one delivery per endpoint that wants them,
// in one statement, so a notification is dispatched exactly once whatever crashes.
import type { Sql } from './db.js';
import { DURABLE_COMMIT } from './durable.js';

/**
 * Dispatches up to `limit` undispatched notifications, oldest first: a delivery
 * for every enabled endpoint that wants each (a targeted one to its endpoint
 * only). Concurrent dispatchers skip each other's rows. Returns the deliveries made.
 * Its commit is durable, and flushing it flushes every commit before it: nothing
 * is sent for a change (an order, a drift, committed without waiting for the
 * disk) that a crash could still lose.
 */
export async function dispatchNotifications(
  db: Sql,
  limit: number,
): Promise<{ notifications: number; deliveryIds: bigint[] }> {
  const rows = await db.$queryRaw<{ delivery_id: bigint | null; notifications: number }[]>`
    WITH durable AS (${DURABLE_COMMIT}), n AS (
      SELECT id, type, endpoint_id FROM notification WHERE dispatched_at IS NULL
      ORDER BY seq LIMIT ${limit} FOR UPDATE SKIP LOCKED
    ), d AS (
      INSERT INTO notification_delivery (notification_id, endpoint_id, next_attempt_at)
      SELECT n.id, e.id, now() FROM n JOIN webhook_endpoint e
        ON e.enabled AND n.type = ANY(e.event_types) AND (n.endpoint_id IS NULL OR n.endpoint_id = e.id)
      ON CONFLICT (notification_id, endpoint_id) DO NOTHING
      RETURNING id
    ), u AS (
      UPDATE notification SET dispatched_at = now() WHERE id IN (SELECT id FROM n) RETURNING 1
    )
    SELECT d.id AS delivery_id, (SELECT count(*)::int FROM u) AS notifications
    FROM (SELECT count(*) FROM durable) one LEFT JOIN d ON true`;
  return {
    notifications: rows[0]?.notifications ?? 0,
    deliveryIds: rows.flatMap((r) => (r.delivery_id === null ? [] : [r.delivery_id])),
  };
}

/**
 * Pending deliveries whose next attempt is overdue by `overdueSec`: their job was
 * lost (a crash between dispatch and enqueueing, or a Redis that lost its data).
 */
export async function overdueDeliveries(
  db: Sql,
  overdueSec: number,
  limit: number,
): Promise<{ id: bigint; round: number }[]> {
  return db.$queryRaw<{ id: bigint; round: number }[]>`
    SELECT id, redeliveries AS round FROM notification_delivery
    WHERE status = 'pending' AND next_attempt_at < now() - make_interval(secs => ${overdueSec}::float8)
    ORDER BY next_attempt_at LIMIT ${limit}::int`;
}
