// The one place that decides the prefix of every Redis key the meter writes
// (BullMQ queues, rate limiters, token cache, locks, the charging pause, the
// sign-in throttle). On a Redis Cluster it is REDIS_PREFIX in a hash tag,
// `{usage-meter}`, so that all of them hash to ONE slot: BullMQ's scripts and the
// meter's own (multi-key Lua, MULTI, MGET) then never cross slots. The price is that
// all of the meter's Redis traffic goes to one shard (docs/redis.md).
import type { Config } from '../config.js';

/** `{prefix}`: the prefix as a hash tag (kept as it is when it already is one). */
export function hashTagged(prefix: string): string {
  return /^\{[^{}]+\}$/.test(prefix) ? prefix : `{${prefix}}`;
}

/** The key prefix the meter uses with this configuration. */
export function redisKeyPrefix(config: Pick<Config, 'REDIS_PREFIX' | 'REDIS_CLUSTER_NODES'>): string {
  return config.REDIS_CLUSTER_NODES ? hashTagged(config.REDIS_PREFIX) : config.REDIS_PREFIX;
}
