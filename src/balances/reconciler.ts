// The periodic reconciliation in the workers: every interval, one process (a Redis
// lock) reconciles the keys with a batch settled since the last run, and sets the
// count of keys whose latest finding is a drift (um_balance_drift_keys).
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Sql } from '../ledger/db.js';
import { keysActiveSince, keysWithDrift } from '../ledger/drift.js';
import { balanceDriftKeys } from '../metrics.js';
import type { PurchaseListReader } from './balance.js';
import { reconcileKeys } from './reconcile.js';

export interface ReconcilerOptions {
  db: Sql;
  redis: Redis;
  /** REDIS_PREFIX: the lock and the last run's time live under it. */
  prefix: string;
  /** Reads that take the reads' share of the QPS (never charging's). */
  douyin: PurchaseListReader;
  intervalMs: number;
  logger: Logger;
}

/** Keys one run looks at, at most (the rest wait for the next run). */
const KEYS_PER_RUN = 10_000;

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(private readonly o: ReconcilerOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.run().finally(() => (this.running = undefined));
    }, this.o.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** One run; how many keys it reconciled (0 when another process has the turn). */
  async run(): Promise<number> {
    try {
      const lock = `${this.o.prefix}:reconcile:lock`;
      if ((await this.o.redis.set(lock, '1', 'PX', this.o.intervalMs, 'NX')) !== 'OK') return 0;
      const lastKey = `${this.o.prefix}:reconcile:last`;
      const startedAt = Date.now();
      const last = Number((await this.o.redis.get(lastKey)) ?? startedAt - this.o.intervalMs);
      const keys = await keysActiveSince(this.o.db, new Date(last), KEYS_PER_RUN);
      const results = await reconcileKeys(this.o.db, this.o.douyin, keys);
      await this.o.redis.set(lastKey, String(startedAt));
      const drifting = await keysWithDrift(this.o.db, 100_000);
      balanceDriftKeys.set(drifting.length);
      const failed = results.filter((r) => r.status === 'failed').length;
      this.o.logger.info({ keys: keys.length, drifting: drifting.length, failed }, 'reconciled balances');
      return keys.length;
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'reconciliation failed; will try again');
      return 0;
    }
  }
}
