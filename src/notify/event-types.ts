// The notifications the meter sends to app services' webhook endpoints, and what
// an endpoint gets when it names none (docs/notifications.md).

export const NOTIFICATION_TYPES = [
  'batch.insufficient',
  'batch.partial',
  'batch.dead',
  /** Opt-in: one per batch charged. */
  'batch.charged',
  'balance.low',
  'purchase.updated',
  'reconcile.drift',
] as const;

export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

/** An endpoint made without event types gets these: all but the one-per-batch batch.charged. */
export const DEFAULT_NOTIFICATION_TYPES: NotificationType[] = NOTIFICATION_TYPES.filter(
  (t) => t !== 'batch.charged',
);

/** A delivery's body. The id is the same on every attempt, so a receiver can deduplicate. */
export interface MeterNotification<D = Record<string, unknown>> {
  id: string;
  type: NotificationType;
  /** When the transaction that made the change it reports began, moments before it committed (ISO 8601). */
  createdAt: string;
  data: D;
}
