// A delivery's attempts (notification_delivery) and its endpoint's health: the
// statements the notify worker runs around one HTTP request.
import { storableText } from './attempts.js';
import type { Sql } from './db.js';

export interface DeliveryToSend {
  id: bigint;
  /** This attempt's number (1 = first). */
  attempt: number;
  /** The retry schedule counts from here (creation or the last redelivery)... */
  retryFrom: Date;
  /** ...and the attempts made before it do not count. */
  attemptBase: number;
  notification: { id: string; type: string; createdAt: Date; data: unknown };
  endpoint: { id: bigint; url: string; secrets: string[] };
}

export type StartedAttempt =
  | { kind: 'send'; delivery: DeliveryToSend }
  /** Its endpoint is disabled: the delivery is cancelled, nothing is sent. */
  | { kind: 'cancelled' }
  /** Delivered, given up, cancelled or deleted already, or redelivered since (a newer round's job sends it). */
  | { kind: 'not_pending' };

/**
 * Counts an attempt of a pending delivery to an enabled endpoint, in this round
 * (redeliveries so far: a job of an earlier round is stale), and returns what to send.
 */
export async function startDeliveryAttempt(db: Sql, id: bigint, round: number): Promise<StartedAttempt> {
  const rows = await db.$queryRaw<
    {
      id: bigint;
      attempts: number;
      retry_from: Date;
      attempt_base: number;
      n_id: string;
      n_type: string;
      n_created_at: Date;
      n_data: unknown;
      e_id: bigint;
      url: string;
      secret: string;
      previous_secret: string | null;
    }[]
  >`
    UPDATE notification_delivery d SET attempts = d.attempts + 1, last_attempt_at = now()
    FROM notification n, webhook_endpoint e
    WHERE d.id = ${id} AND d.status = 'pending' AND d.redeliveries = ${round}::int
      AND n.id = d.notification_id AND e.id = d.endpoint_id AND e.enabled
    RETURNING d.id, d.attempts, d.retry_from, d.attempt_base, n.id AS n_id, n.type AS n_type, n.created_at AS n_created_at,
              n.data AS n_data, e.id AS e_id, e.url, e.secret,
              CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END AS previous_secret`;
  const r = rows[0];
  if (r)
    return {
      kind: 'send',
      delivery: {
        id: r.id,
        attempt: r.attempts,
        retryFrom: r.retry_from,
        attemptBase: r.attempt_base,
        notification: { id: r.n_id, type: r.n_type, createdAt: r.n_created_at, data: r.n_data },
        endpoint: {
          id: r.e_id,
          url: r.url,
          secrets: r.previous_secret ? [r.secret, r.previous_secret] : [r.secret],
        },
      },
    };
  const cancelled = await db.$executeRaw`
    UPDATE notification_delivery d SET status = 'cancelled', next_attempt_at = NULL,
           last_error = COALESCE(d.last_error || ' / ', '') || 'cancelled: endpoint disabled'
    FROM webhook_endpoint e
    WHERE d.id = ${id} AND d.status = 'pending' AND d.redeliveries = ${round}::int
      AND e.id = d.endpoint_id AND NOT e.enabled`;
  return cancelled > 0 ? { kind: 'cancelled' } : { kind: 'not_pending' };
}

export type AttemptOutcome =
  | { kind: 'delivered'; statusCode: number }
  | { kind: 'retry'; delayMs: number; statusCode?: number; error: string }
  | { kind: 'give_up'; statusCode?: number; error: string };

/**
 * Records an attempt's outcome, and its endpoint's health in the same statement: a
 * success ends the endpoint's failing spell; a failure starts one, and an endpoint
 * failing for `disableAfterSec` is disabled (its pending deliveries are cancelled
 * when their turn comes). Returns whether this disabled the endpoint. The endpoint's
 * row is written only when its health changes, so deliveries to a healthy (or an
 * already failing) endpoint do not queue on its row; one UPDATE, no separate
 * SELECT ... FOR UPDATE first (that pair deadlocks under concurrent deliveries).
 */
export async function recordDeliveryAttempt(
  db: Sql,
  id: bigint,
  round: number,
  o: AttemptOutcome,
  disableAfterSec: number,
): Promise<{ disabledEndpoint: boolean }> {
  const ok = o.kind === 'delivered';
  const status = o.kind === 'delivered' ? 'delivered' : o.kind === 'give_up' ? 'failed' : 'pending';
  const delaySec = o.kind === 'retry' ? o.delayMs / 1000 : null;
  // A receiver's words, made storable (a NUL would make this statement fail on every retry).
  const error = o.kind === 'delivered' ? null : storableText(o.error.slice(0, 2000));
  const rows = await db.$queryRaw<{ disabled: boolean }[]>`
    WITH d AS (
      UPDATE notification_delivery SET status = ${status}, last_status_code = ${o.statusCode ?? null}::int,
             last_error = ${error}, delivered_at = CASE WHEN ${ok} THEN now() END,
             next_attempt_at = now() + make_interval(secs => ${delaySec}::float8)
      WHERE id = ${id} AND status = 'pending' AND redeliveries = ${round}::int
      RETURNING endpoint_id
    ), e AS (
      -- SET and WHERE read the row as it was (the newest version, re-checked after a wait).
      UPDATE webhook_endpoint e SET
        failing_since = CASE WHEN ${ok} THEN NULL ELSE COALESCE(e.failing_since, now()) END,
        enabled = e.enabled AND (${ok} OR e.failing_since IS NULL
                                 OR e.failing_since > now() - make_interval(secs => ${disableAfterSec}::int)),
        disabled_at = CASE WHEN NOT ${ok} AND e.enabled
                                AND e.failing_since <= now() - make_interval(secs => ${disableAfterSec}::int)
                           THEN now() ELSE e.disabled_at END,
        disabled_reason = CASE WHEN NOT ${ok} AND e.enabled
                                    AND e.failing_since <= now() - make_interval(secs => ${disableAfterSec}::int)
                               THEN 'failing since ' || to_char(e.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                                    || ': ' || left(${error ?? ''}::text, 500)
                               ELSE e.disabled_reason END
      WHERE e.id = (SELECT endpoint_id FROM d)
        AND CASE WHEN ${ok} THEN e.failing_since IS NOT NULL
                 ELSE e.failing_since IS NULL
                      OR (e.enabled AND e.failing_since <= now() - make_interval(secs => ${disableAfterSec}::int)) END
      RETURNING NOT e.enabled AND e.disabled_at = now()::timestamptz(3) AS disabled
    )
    SELECT disabled FROM e`;
  return { disabledEndpoint: rows[0]?.disabled === true };
}

/**
 * Cancels the endpoint's pending deliveries (it was disabled): nothing is sent to
 * it, even if it is enabled again before their jobs run; an operator can redeliver.
 */
export async function cancelPendingDeliveries(db: Sql, endpointId: bigint): Promise<number> {
  return db.$executeRaw`
    UPDATE notification_delivery SET status = 'cancelled', next_attempt_at = NULL,
           last_error = COALESCE(last_error || ' / ', '') || 'cancelled: endpoint disabled'
    WHERE endpoint_id = ${endpointId} AND status = 'pending'`;
}
