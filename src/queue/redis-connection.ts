// The one factory of the meter's Redis connections: a single server (REDIS_URL), a
// Sentinel-managed master (ioredis asks the sentinels where the master is, and asks
// again after a failover) or a Redis Cluster (ioredis's Cluster). Failover and
// redirection are ioredis's own; nothing here second-guesses them.
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config.js';
import { redisMode } from './redis-topology.js';

/** A connection of the meter: what every module that talks to Redis takes. */
export type RedisClient = Redis | Cluster;

export type RedisSettings = Pick<
  Config,
  'REDIS_URL' | 'REDIS_SENTINELS' | 'REDIS_SENTINEL_NAME' | 'REDIS_CLUSTER_NODES' | 'REDIS_PASSWORD'
>;

export interface RedisConnectOptions {
  /**
   * How often a command is retried across reconnections before it fails; null:
   * never fails for that (BullMQ workers require it: they block and wait).
   */
  maxRetriesPerRequest: number | null;
  /** Give up reconnecting after this many tries (one-shot commands). Default: keep trying. */
  maxReconnects?: number;
  /** TCP connect timeout, ms. Default ioredis's (10 s). */
  connectTimeoutMs?: number;
}

/** A new connection to the configured Redis (single, Sentinel or Cluster). */
export function createRedis(config: RedisSettings, o: RedisConnectOptions): RedisClient {
  const retry =
    o.maxReconnects === undefined
      ? undefined
      : (times: number) => (times > o.maxReconnects! ? null : Math.min(times * 100, 1_000));
  const common: RedisOptions = {
    maxRetriesPerRequest: o.maxRetriesPerRequest,
    enableReadyCheck: true,
    ...(o.connectTimeoutMs === undefined ? {} : { connectTimeout: o.connectTimeoutMs }),
  };
  switch (redisMode(config)) {
    case 'cluster': {
      const options: ClusterOptions = {
        // Node connections are the cluster's own; these options go to each of them.
        redisOptions: { ...common, ...(config.REDIS_PASSWORD ? { password: config.REDIS_PASSWORD } : {}) },
        ...(retry ? { clusterRetryStrategy: retry } : {}),
      };
      return new Cluster(config.REDIS_CLUSTER_NODES!, options);
    }
    case 'sentinel':
      return new Redis({
        ...common,
        sentinels: config.REDIS_SENTINELS!,
        name: config.REDIS_SENTINEL_NAME!,
        // The master's and replicas' password; the sentinels themselves are asked without one.
        ...(config.REDIS_PASSWORD ? { password: config.REDIS_PASSWORD } : {}),
        // Not failoverDetector (ioredis's +switch-master subscription): with it, BullMQ
        // workers now and then stopped taking jobs after a failover in our tests. A
        // failover closes the old master's connections anyway (docs/redis.md).
        ...(retry ? { retryStrategy: retry, sentinelRetryStrategy: retry } : {}),
      });
    default:
      return new Redis(config.REDIS_URL, { ...common, ...(retry ? { retryStrategy: retry } : {}) });
  }
}
