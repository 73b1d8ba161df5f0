// The safety net: finds keys whose pending events or open batches have waited
// longer than they should (a trigger lost to a crash, a Redis restart, a charge
// job that ended before late events arrived) and schedules their charge job.
// One process per interval does the work (a Redis lock).
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { Sql } from '../ledger/db.js';
import { keysNeedingCharge } from '../ledger/keys.js';
import { type ChargeJobData, scheduleCharge } from '../queue/queues.js';
import type { RedisClient } from '../queue/redis-connection.js';

export interface SweeperOptions {
  db: Sql;
  redis: RedisClient;
  lockKey: string;
  chargeQueue: Queue<ChargeJobData>;
  intervalMs: number;
  /** Work older than this is considered forgotten. */
  staleAfterMs: number;
  logger: Logger;
}

export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(private readonly o: SweeperOptions) {}

  start() {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.sweep().finally(() => (this.running = undefined));
    }, this.o.intervalMs);
    this.timer.unref();
  }

  async stop() {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** One pass; returns how many keys it scheduled (0 when another process holds the turn). */
  async sweep(): Promise<number> {
    try {
      // While charging is paused the keys' jobs wait in the paused queue already.
      if (await this.o.chargeQueue.isPaused()) return 0;
      const turn = await this.o.redis.set(this.o.lockKey, '1', 'PX', this.o.intervalMs, 'NX');
      if (turn !== 'OK') return 0;
      // Keys are looked at in id order, a slice a pass, wherever the last pass (of
      // whichever process) stopped.
      const cursorKey = `${this.o.lockKey}:cursor`;
      const after = Number((await this.o.redis.get(cursorKey)) ?? 0);
      const { keyIds: keys, lastKeyId } = await keysNeedingCharge(this.o.db, {
        olderThanMs: this.o.staleAfterMs,
        recentMs: 3 * this.o.intervalMs,
        limit: 5_000,
        afterKeyId: after,
      });
      if (keys.length > 0) {
        await scheduleCharge(this.o.chargeQueue, keys, 0);
        this.o.logger.info({ keys: keys.length }, 'sweeper scheduled keys with waiting work');
      }
      // Only once this slice is scheduled: a failure above looks at it again next pass.
      await this.o.redis.set(cursorKey, String(lastKeyId ?? 0));
      return keys.length;
    } catch (err) {
      this.o.logger.warn({ err }, 'sweep failed; will try again');
      return 0;
    }
  }
}
