// Slows down password guessing: after `maxFailures` wrong passwords from one
// address (sign-in form or HTTP Basic) within `windowSec` of the first one, that
// address is refused, right password or not, until the window ends. Counted in
// Redis so that every server of the deployment shares the count.
//
// Each attempt is counted atomically BEFORE its password is checked, and the count
// is given back when the password was right: concurrent guesses cannot all slip in
// under one stale reading of the count.
//
// Hand-written (two small Lua scripts) because @fastify/rate-limit counts every
// request: it cannot count failures only, and an operator's dashboard polls.

import type { Logger } from '../logger.js';
import type { RedisClient } from '../queue/redis-connection.js';

// Refuses (returning the ms left) when the address is at the limit, else counts the
// attempt (the window starts at the first) and returns 0. Plain commands only: Redis 5+.
const TAKE_ATTEMPT = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then ttl = 1000 end
  return ttl
end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

// Gives an attempt back (the password was right), never below zero, never reviving a key.
const GIVE_BACK = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return 1`;

export interface SignInThrottleOptions {
  redis: RedisClient;
  /** The meter's key prefix (redisKeyPrefix); keys are `<prefix>:signin-failures:<ip>`. */
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
   * Takes an attempt for the address: 0 when it may try now (the attempt is counted
   * until `succeeded` gives it back), else the seconds until it may try again. While
   * Redis is unreachable it lets the attempt through: operators need the dashboard
   * most when something is down.
   */
  async attempt(ip: string): Promise<number> {
    try {
      const ms = Number(
        await this.o.redis.eval(TAKE_ATTEMPT, 1, this.key(ip), this.maxFailures, this.windowSec * 1000),
      );
      return ms > 0 ? Math.max(1, Math.ceil(ms / 1000)) : 0;
    } catch (err) {
      this.o.logger.warn(
        { err: (err as Error).message },
        'sign-in throttle unavailable; attempt let through',
      );
      return 0;
    }
  }

  /** The password was right: the attempt does not count. */
  async succeeded(ip: string): Promise<void> {
    await this.o.redis.eval(GIVE_BACK, 1, this.key(ip)).catch(() => {});
  }

  key(ip: string): string {
    return `${this.o.prefix}:signin-failures:${ip}`;
  }
}
