// The periodic reconciliation in the workers: every interval, one process (a Redis
// lock with a token) reconciles the keys with a batch settled since the last
// complete run; every process then sets um_balance_drift_keys from the database.
// A run that could not check every key (a read failed, a key was busy, too many
// keys, out of time) leaves the last run's time where it was, so the next run
// checks them again (a key checked twice costs one more read, nothing else).
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { countKeysWithDrift, keysActiveSince } from '../ledger/drift.js';
import type { Ledger } from '../ledger/pg-ledger.js';
import { balanceDriftKeys } from '../metrics.js';
import type { RedisClient } from '../queue/redis-connection.js';
import type { PurchaseListReader } from './balance.js';
import { reconcileKeys } from './reconcile.js';

export interface ReconcilerOptions {
  db: Ledger;
  redis: RedisClient;
  /** The meter's key prefix (redisKeyPrefix): the lock and the last run's time live under it. */
  prefix: string;
  /** Reads that take the reads' share of the QPS (never charging's). */
  douyin: PurchaseListReader;
  intervalMs: number;
  /** This worker (the owner of the keys' leases while they are read). */
  workerId: string;
  logger: Logger;
}

/** Keys one run looks at, at most (a run with more is incomplete: the next one goes on). */
const KEYS_PER_RUN = 10_000;
/** Settlements this close to a run's start may still be committing: the next run looks again. */
const MARGIN_MS = 60_000;

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopping = false;

  constructor(private readonly o: ReconcilerOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.run()
        .then(() => this.refreshGauge())
        .finally(() => (this.running = undefined));
    }, this.o.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** One run; how many keys it reconciled (0 when another process has the turn). */
  async run(): Promise<number> {
    const lock = `${this.o.prefix}:reconcile:lock`;
    const token = randomUUID();
    try {
      if ((await this.o.redis.set(lock, token, 'PX', this.o.intervalMs, 'NX')) !== 'OK') return 0;
      const deadline = Date.now() + this.o.intervalMs * 0.8;
      const lastKey = `${this.o.prefix}:reconcile:last`;
      const dbNow = (await this.o.db.$queryRaw<{ now: Date }[]>`SELECT now() AS now`)[0]!.now.getTime();
      const last = Number((await this.o.redis.get(lastKey)) ?? dbNow - this.o.intervalMs);
      const keys = await keysActiveSince(this.o.db, new Date(last), KEYS_PER_RUN);
      const results = await reconcileKeys(this.o.db, this.o.douyin, keys, {
        owner: `${this.o.workerId}:reconcile`,
        shouldStop: () => this.stopping || Date.now() > deadline,
      });
      const incomplete =
        keys.length === KEYS_PER_RUN ||
        results.length < keys.length ||
        results.some((r) => r.status === 'failed' || r.status === 'busy');
      if (!incomplete) await this.o.redis.set(lastKey, String(dbNow - MARGIN_MS));
      const drifting = results.filter((r) => r.status === 'checked' && r.drift.drift !== 0).length;
      this.o.logger.info(
        { keys: keys.length, checked: results.length, drifting, incomplete },
        'reconciled balances',
      );
      return results.length;
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'reconciliation failed; will try again');
      return 0;
    } finally {
      // The turn ends with the run (only this run's own lock is removed).
      await this.o.redis
        .eval(
          "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
          1,
          lock,
          token,
        )
        .catch(() => {});
    }
  }

  /** Every process's gauge, from the database (not only the one whose turn it was). */
  async refreshGauge(): Promise<void> {
    try {
      balanceDriftKeys.set(await countKeysWithDrift(this.o.db));
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'counting drifting keys failed');
    }
  }
}
