// Moves notifications from the outbox to the `notify` queue: polls for undispatched
// notifications (every pollMs; a dispatch is one statement), enqueues the
// deliveries it made, and now and then re-enqueues deliveries whose job was lost
// (a crash between the dispatch's commit and the enqueue). Any number of workers
// may run one: the dispatch statement skips rows another holds.
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { dispatchNotifications, overdueDeliveries } from '../ledger/notifications.js';
import type { Ledger } from '../ledger/pg-ledger.js';
import { type DeliveryJobData, enqueueDeliveries } from './queue.js';

export interface DispatcherOptions {
  db: Ledger;
  queue: Queue<DeliveryJobData>;
  logger: Logger;
  /** Default 250 ms: a notification leaves about this soon after its commit. */
  pollMs?: number;
  /** Overdue deliveries are looked for this often. Default 30 s. */
  sweepMs?: number;
  /** A pending delivery this far past its attempt time has lost its job. Default 60 s. */
  overdueSec?: number;
}

const DISPATCH_BATCH = 500;
const FAILURE_PAUSE_MS = 5_000;

export class NotificationDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private lastSweep = 0;
  private stopped = false;
  /** After a failed pass (the ledger down), polls pause until then: one warning per pause, not four a second. */
  private pausedUntil = 0;

  constructor(private readonly o: DispatcherOptions) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.o.pollMs ?? 250);
    this.timer.unref();
    this.kick();
  }

  /** Dispatches now, unless a pass is running. */
  kick(): void {
    if (this.stopped || this.running || Date.now() < this.pausedUntil) return;
    this.running = this.pass()
      .catch((err) => {
        this.pausedUntil = Date.now() + FAILURE_PAUSE_MS;
        this.o.logger.warn({ err: (err as Error).message }, 'notification dispatch failed; retried in 5 s');
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  /** One pass: every undispatched notification, then (now and then) the overdue deliveries. */
  async pass(): Promise<void> {
    for (;;) {
      const { notifications, deliveryIds } = await dispatchNotifications(this.o.db, DISPATCH_BATCH);
      await enqueueDeliveries(
        this.o.queue,
        deliveryIds.map((id) => ({ id, round: 0 })),
      );
      if (notifications < DISPATCH_BATCH) break;
    }
    if (Date.now() - this.lastSweep >= (this.o.sweepMs ?? 30_000)) {
      this.lastSweep = Date.now();
      const overdue = await overdueDeliveries(this.o.db, this.o.overdueSec ?? 60, 1_000);
      if (overdue.length > 0) {
        this.o.logger.info({ deliveries: overdue.length }, 're-enqueueing overdue webhook deliveries');
        await enqueueDeliveries(this.o.queue, overdue);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }
}
