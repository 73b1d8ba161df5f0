// Processes the stored webhook messages, after they were answered: an order event
// becomes a douyin_order row, and its snapshot's remaining times a balance
// snapshot of the buyer's key (not test mode: the platform sends orders of real
// purchases); other events are kept and marked. Any number of processes may run
// it at once: each locks the next unprocessed messages and skips locked ones.
import type { Logger } from 'pino';
import { recordSnapshot } from '../ledger/balance-snapshots.js';
import { recordOrder } from '../ledger/orders.js';
import type { Ledger } from '../ledger/pg-ledger.js';
import { lockUnprocessedMessages, markMessageProcessed } from '../ledger/webhook-messages.js';
import { parseWebhookMessage } from './order-message.js';

/** Processes every unprocessed message, `batch` per transaction; returns how many. */
export async function processWebhookMessages(db: Ledger, batch = 100): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await db.$transaction(async (tx) => {
      const messages = await lockUnprocessedMessages(tx, batch);
      for (const m of messages) {
        let body: unknown;
        try {
          body = JSON.parse(m.body);
        } catch {
          await markMessageProcessed(tx, m.id, 'the body is not JSON');
          continue;
        }
        const parsed = parseWebhookMessage(body);
        if (parsed.kind === 'order') {
          const o = parsed.order;
          await recordOrder(tx, m.id, o, m.receivedAt);
          if (o.serviceId !== null && o.serviceModeId !== null && o.remainServiceTimes !== null) {
            await recordSnapshot(
              tx,
              { openId: o.openId, serviceId: o.serviceId, serviceModeId: o.serviceModeId, isTestEnv: false },
              { remaining: o.remainServiceTimes, asOf: m.receivedAt, source: 'webhook' },
            );
          }
        }
        await markMessageProcessed(tx, m.id, parsed.kind === 'other' ? (parsed.problem ?? null) : null);
      }
      return messages.length;
    });
    total += n;
    if (n < batch) return total;
  }
}

/**
 * Runs processWebhookMessages when kicked (right after a message is stored) and
 * every `intervalMs` (messages a crashed process stored but did not process), one
 * pass at a time.
 */
export class WebhookProcessor {
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Ledger,
    private readonly logger: Logger,
    private readonly intervalMs = 30_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
    this.kick();
  }

  /** Processes soon; a kick during a pass makes one more pass after it. */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await processWebhookMessages(this.db);
        } catch (err) {
          this.logger.warn(
            { err: (err as Error).message },
            'processing webhook messages failed; retried later',
          );
        }
      } while (this.again);
    })().finally(() => {
      this.running = undefined;
    });
  }

  /** Waits for the pass in progress (tests, shutdown). */
  async idle(): Promise<void> {
    await this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.idle();
  }
}
