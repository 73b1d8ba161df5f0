// The `notify` queue's processor: one attempt of one delivery. Counts the attempt,
// sends the signed notification, records the outcome with the endpoint's health,
// and on failure parks the job until its retry (BullMQ's moveToDelayed), or gives
// the delivery up once it is NOTIFY_GIVE_UP_AFTER_SEC old. A worker that dies
// mid-request leaves its job to BullMQ's stalled-job recovery: the same delivery is
// sent again (at least once; the receiver deduplicates by the notification id).
import { DelayedError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { Sql } from '../ledger/db.js';
import {
  type AttemptOutcome,
  cancelPendingDeliveries,
  recordDeliveryAttempt,
  startDeliveryAttempt,
} from '../ledger/notification-deliveries.js';
import { notificationDeliveriesTotal, notificationDeliveryDuration } from '../metrics.js';
import type { DeliveryJobData } from './queue.js';
import { nextRetryDelayMs, type RetrySchedule } from './retry-schedule.js';
import type { DeliverySender } from './send-delivery.js';

export interface DeliveryProcessorOptions {
  db: Sql;
  sender: Pick<DeliverySender, 'send'>;
  schedule: RetrySchedule;
  disableAfterSec: number;
  logger: Logger;
}

export type DeliveryOutcome = AttemptOutcome['kind'] | 'cancelled' | 'not_pending';

export class DeliveryProcessor {
  constructor(private readonly o: DeliveryProcessorOptions) {}

  async process(job: Job<DeliveryJobData>, token?: string): Promise<DeliveryOutcome> {
    const id = BigInt(job.data.deliveryId);
    const round = job.data.round ?? 0;
    const started = await startDeliveryAttempt(this.o.db, id, round);
    if (started.kind !== 'send') return started.kind;
    const { delivery: d } = started;
    const n = d.notification;
    // The body is the same on every attempt; only the signature's timestamp changes.
    const body = JSON.stringify({
      id: n.id,
      type: n.type,
      createdAt: n.createdAt.toISOString(),
      data: n.data,
    });
    const result = await this.o.sender.send({
      url: d.endpoint.url,
      body,
      secrets: d.endpoint.secrets,
      notificationId: n.id,
      type: n.type,
      attempt: d.attempt,
    });
    let outcome: AttemptOutcome;
    if (result.ok) outcome = { kind: 'delivered', statusCode: result.statusCode! };
    else {
      const error = result.error ?? 'failed';
      const delayMs = nextRetryDelayMs(
        this.o.schedule,
        d.attempt - d.attemptBase,
        Date.now() - d.retryFrom.getTime(),
      );
      outcome =
        delayMs === null
          ? { kind: 'give_up', statusCode: result.statusCode, error }
          : { kind: 'retry', delayMs, statusCode: result.statusCode, error };
    }
    const { disabledEndpoint } = await recordDeliveryAttempt(
      this.o.db,
      id,
      round,
      outcome,
      this.o.disableAfterSec,
    );
    notificationDeliveriesTotal.inc({ outcome: outcome.kind, type: n.type });
    notificationDeliveryDuration.observe(result.durationMs / 1000);
    const log = {
      deliveryId: String(id),
      notificationId: n.id,
      type: n.type,
      attempt: d.attempt,
      ms: result.durationMs,
    };
    if (disabledEndpoint) {
      // This delivery and every other pending one of the endpoint: nothing more goes there.
      const cancelled = await cancelPendingDeliveries(this.o.db, d.endpoint.id);
      this.o.logger.warn(
        { ...log, endpointId: String(d.endpoint.id), cancelled },
        'webhook endpoint disabled: failing too long',
      );
      return 'cancelled';
    }
    if (outcome.kind === 'retry') {
      this.o.logger.info(
        { ...log, error: outcome.error, retryInMs: outcome.delayMs },
        'webhook delivery failed',
      );
      // The job waits in the delayed set until its retry (BullMQ's step-job pattern).
      await job.moveToDelayed(Date.now() + outcome.delayMs, token);
      throw new DelayedError();
    }
    if (outcome.kind === 'give_up')
      this.o.logger.warn({ ...log, error: outcome.error }, 'webhook delivery given up');
    return outcome.kind;
  }
}
