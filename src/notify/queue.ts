// The `notify` BullMQ queue: one job per webhook delivery (notification_delivery),
// deduplicated by the delivery's id, so a delivery enqueued twice (a dispatcher
// retrying, the overdue sweep) is one job. A failed attempt moves its job to the
// delayed set until its retry (delivery-processor.ts).
import { type ConnectionOptions, Queue } from 'bullmq';

export const NOTIFY_QUEUE = 'notify';
/** balance.low checks, one job per key at a time (balance-watch.ts). */
export const BALANCE_CHECK_QUEUE = 'balance-check';

export interface BalanceCheckJobData {
  keyId: number;
}

export interface DeliveryJobData {
  /** notification_delivery.id, as text (JSON has no bigint). */
  deliveryId: string;
  /** The delivery's redelivery round: a job of an earlier round no longer sends it. */
  round?: number;
}

/** A delivery to enqueue, in its current round (0 until an operator redelivers it). */
export interface DeliveryRef {
  id: bigint;
  round: number;
}

export function createNotifyQueue(connection: ConnectionOptions, prefix: string): Queue<DeliveryJobData> {
  return new Queue<DeliveryJobData>(NOTIFY_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: {
      // Retries are the processor's own (moveToDelayed); a job that throws anyway
      // (the ledger unreachable) is tried again like the meter's other jobs.
      attempts: 1_000_000,
      backoff: { type: 'meter' },
      removeOnComplete: { count: 1_000 },
      removeOnFail: { count: 1_000 },
    },
  });
}

export function createBalanceCheckQueue(
  connection: ConnectionOptions,
  prefix: string,
): Queue<BalanceCheckJobData> {
  return new Queue<BalanceCheckJobData>(BALANCE_CHECK_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: {
      // A check that keeps failing is dropped: the key's next settled run asks again.
      attempts: 5,
      backoff: { type: 'meter' },
      removeOnComplete: true,
      removeOnFail: { count: 1_000 },
    },
  });
}

/** Schedules a balance check of the key: at most one waiting and one running per key. */
export async function scheduleBalanceCheck(queue: Queue<BalanceCheckJobData>, keyId: number): Promise<void> {
  await queue.add('check', { keyId }, { deduplication: { id: `key:${keyId}`, keepLastIfActive: true } });
}

/**
 * Enqueues these deliveries, one job per delivery and round: an operator's
 * redelivery is a new job even while the old one's id is kept among the completed.
 */
export async function enqueueDeliveries(
  queue: Queue<DeliveryJobData>,
  refs: readonly DeliveryRef[],
): Promise<void> {
  if (refs.length === 0) return;
  await queue.addBulk(
    refs.map(({ id, round }) => ({
      name: 'deliver',
      data: { deliveryId: String(id), round },
      opts: { jobId: round === 0 ? `d-${id}` : `d-${id}-r${round}` },
    })),
  );
}
