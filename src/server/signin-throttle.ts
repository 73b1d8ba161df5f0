// Slows down password guessing: after `maxFailures` wrong passwords from one
// address (sign-in form or HTTP Basic) within `windowSec` of the first one, that
// address is refused, right password or not, until the window ends. Counted in
// Redis so that every server of the deployment shares the count.
//
// Hand-written (a few Redis commands) because @fastify/rate-limit counts every
// request: it cannot count failures only, and an operator's dashboard polls.
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.js';

export interface SignInThrottleOptions {
  redis: Redis;
  /** REDIS_PREFIX; keys are `<prefix>:signin-failures:<ip>`. */
  prefix: string;
  /** Wrong passwords allowed per address per window. Default 10. */
  maxFailures?: number;
  /** Window, counted from an address's first failure, seconds. Default 900. */
  windowSec?: number;
  logger: Logger;
}

export class SignInThrottle {
  readonly maxFailures: number;
  readonly windowSec: number;

  constructor(private readonly o: SignInThrottleOptions) {
    this.maxFailures = o.maxFailures ?? 10;
    this.windowSec = o.windowSec ?? 900;
  }

  /**
   * Seconds until the address may try again, or 0 when it may try now. While Redis
   * is unreachable it lets the attempt through: operators need the dashboard most
   * when something is down.
   */
  async retryAfterSec(ip: string): Promise<number> {
    try {
      const [[, count], [, ttlMs]] = (await this.o.redis
        .multi()
        .get(this.key(ip))
        .pttl(this.key(ip))
        .exec()) as [[null, string | null], [null, number]];
      if (Number(count ?? 0) < this.maxFailures) return 0;
      return Math.max(1, Math.ceil(ttlMs / 1000));
    } catch (err) {
      this.o.logger.warn(
        { err: (err as Error).message },
        'sign-in throttle unavailable; attempt let through',
      );
      return 0;
    }
  }

  /** Counts a wrong password from the address. */
  async failed(ip: string): Promise<void> {
    try {
      await this.o.redis.multi().incr(this.key(ip)).expire(this.key(ip), this.windowSec, 'NX').exec();
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'sign-in failure not counted');
    }
  }

  private key(ip: string): string {
    return `${this.o.prefix}:signin-failures:${ip}`;
  }
}
