// Assembles the worker's notification side: the dispatcher (outbox -> `notify`
// queue), the `notify` queue's consumer (signed HTTP deliveries) and the
// `balance-check` queue's (balance.low), which the charge consumer feeds after a
// settled run.
import { type ConnectionOptions, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { PurchaseListReader } from '../balances/balance.js';
import type { Ledger } from '../ledger/pg-ledger.js';
import { AddressGuard } from './address-guard.js';
import { BalanceWatch } from './balance-watch.js';
import { DeliveryProcessor } from './delivery-processor.js';
import { NotificationDispatcher } from './dispatcher.js';
import {
  BALANCE_CHECK_QUEUE,
  type BalanceCheckJobData,
  createBalanceCheckQueue,
  createNotifyQueue,
  type DeliveryJobData,
  NOTIFY_QUEUE,
  scheduleBalanceCheck,
} from './queue.js';
import { DEFAULT_RETRY_SCHEDULE } from './retry-schedule.js';
import { DeliverySender } from './send-delivery.js';

export interface NotifierOptions {
  db: Ledger;
  /** Connections are made from it: each queue's and each consumer's. */
  connection: () => ConnectionOptions;
  prefix: string;
  logger: Logger;
  /** Purchase-list reads for balance.low, through the reads' share of the QPS. */
  douyin?: PurchaseListReader;
  allowedHosts: string[];
  retryBaseMs: number;
  giveUpAfterSec: number;
  disableAfterSec: number;
  concurrency: number;
  /** BullMQ job lock: a crashed worker's delivery is sent again after about this. */
  lockDurationMs: number;
  /** Backoff of a job that threw (the ledger unreachable): the meter's own strategy. */
  backoffStrategy: (attemptsMade: number, type?: string, err?: Error) => number;
  pollMs?: number;
}

export interface Notifier {
  /** After a charge run settled a batch of the key: a balance.low check, if an endpoint wants one. */
  afterSettled(keyId: number): Promise<void>;
  dispatcher: NotificationDispatcher;
  close(): Promise<void>;
}

/** balance.low checks at once per worker (each a few reads, perhaps a purchase-list read). */
const BALANCE_CHECK_CONCURRENCY = 8;

export function startNotifier(o: NotifierOptions): Notifier {
  const queue = createNotifyQueue(o.connection(), o.prefix);
  const checks = createBalanceCheckQueue(o.connection(), o.prefix);
  const sender = new DeliverySender(new AddressGuard(o.allowedHosts));
  const processor = new DeliveryProcessor({
    db: o.db,
    sender,
    schedule: { ...DEFAULT_RETRY_SCHEDULE, baseMs: o.retryBaseMs, giveUpAfterMs: o.giveUpAfterSec * 1000 },
    disableAfterSec: o.disableAfterSec,
    logger: o.logger,
  });
  const balanceWatch = new BalanceWatch(o.db, o.douyin);
  const common = {
    prefix: o.prefix,
    // A delivery takes at most its 10 s timeout; the lock outlasts it.
    lockDuration: o.lockDurationMs,
    stalledInterval: Math.max(1_000, Math.floor(o.lockDurationMs / 2)),
    maxStalledCount: 1_000_000,
    settings: { backoffStrategy: o.backoffStrategy },
  };
  const workers = [
    new Worker<DeliveryJobData>(NOTIFY_QUEUE, (job, token) => processor.process(job, token), {
      ...common,
      connection: o.connection(),
      concurrency: o.concurrency,
    }),
    new Worker<BalanceCheckJobData>(BALANCE_CHECK_QUEUE, (job) => balanceWatch.check(job.data.keyId), {
      ...common,
      connection: o.connection(),
      concurrency: BALANCE_CHECK_CONCURRENCY,
    }),
  ];
  for (const w of workers) {
    w.on('error', (err) => o.logger.warn({ err: err.message, queue: w.name }, 'worker error'));
    w.on('failed', (job, err) => {
      if (err.name === 'DelayedError') return; // a delivery waiting for its retry
      o.logger.warn({ queue: w.name, jobId: job?.id, err: err.message }, 'job failed; it will be retried');
    });
  }
  const dispatcher = new NotificationDispatcher({ db: o.db, queue, logger: o.logger, pollMs: o.pollMs });
  dispatcher.start();
  return {
    async afterSettled(keyId) {
      if (await balanceWatch.isWanted()) await scheduleBalanceCheck(checks, keyId);
    },
    dispatcher,
    async close() {
      await dispatcher.stop();
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all([queue.close(), checks.close()]);
      await sender.close();
    },
  };
}
