// Processes the stored webhook messages, after they were answered: an order event
// becomes a douyin_order row (once per order and event, whatever message carried
// it). It does not become a balance: the order snapshot's remain_service_times is
// one order's, its meaning is not confirmed, and delivery is neither ordered nor
// unique; a newer order instead makes the key's balance read the purchase list
// again (src/balances/balance.ts). Any number of processes may run this at once:
// each locks the next unprocessed messages and skips locked ones.
import type { Logger } from 'pino';
import { describeDbError } from '../ledger/isolate.js';
import { recordOrder } from '../ledger/orders.js';
import type { Ledger } from '../ledger/pg-ledger.js';
import { lockUnprocessedMessages, markMessageProcessed } from '../ledger/webhook-messages.js';
import { parseWebhookMessage, type WebhookMessage } from './order-message.js';

/** Processes every unprocessed message, `batch` per transaction; returns how many. */
export async function processWebhookMessages(db: Ledger, batch = 100): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await db.$transaction(async (tx) => {
      const messages = await lockUnprocessedMessages(tx, batch);
      for (const m of messages) {
        // Each message in a savepoint: one the ledger refuses is marked with why, and
        // never holds up the messages after it.
        await tx.$executeRaw`SAVEPOINT webhook_message`;
        try {
          const parsed = parseStored(m.body);
          if (parsed.kind === 'order') await recordOrder(tx, m.id, parsed.order, m.receivedAt);
          await markMessageProcessed(tx, m.id, parsed.kind === 'other' ? (parsed.problem ?? null) : null);
          await tx.$executeRaw`RELEASE SAVEPOINT webhook_message`;
        } catch (err) {
          await tx.$executeRaw`ROLLBACK TO SAVEPOINT webhook_message`;
          await markMessageProcessed(tx, m.id, `not recorded: ${describeDbError(err).slice(0, 500)}`);
        }
      }
      return messages.length;
    });
    total += n;
    if (n < batch) return total;
  }
}

function parseStored(body: string): WebhookMessage {
  try {
    return parseWebhookMessage(JSON.parse(body));
  } catch {
    return { kind: 'other', event: 'unknown', problem: 'the body is not JSON' };
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

  private stopped = false;

  /** Passes every intervalMs (the first one interval after start: a starting server adds no query). */
  start(): void {
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
  }

  /** Processes soon; a kick during a pass makes one more pass after it. */
  kick(): void {
    if (this.stopped) return;
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
    this.stopped = true;
    clearInterval(this.timer);
    await this.idle();
  }
}
