// Configuration and connections for one CLI command: a bad variable is printed and
// the command exits 2.
import { type Config, ConfigError, type ConfigNeed, loadConfig } from '../config.js';
import { createPrisma, type PrismaClient } from '../db/prisma.js';
import { createRedis, type RedisClient } from '../queue/redis-connection.js';
import { redisKeyPrefix } from '../queue/redis-prefix.js';

/** The parsed config, or undefined after printing every bad variable to stderr. */
export function cliConfig(needs: ConfigNeed[] = []): Config | undefined {
  try {
    return loadConfig(needs);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return undefined;
  }
}

/**
 * Runs `fn` with a Redis connection, the meter's key prefix (redisKeyPrefix) and the
 * ledger, and closes both connections after.
 */
export async function withLedger<T>(
  config: Config,
  fn: (c: { db: PrismaClient; redis: RedisClient; prefix: string }) => Promise<T>,
): Promise<T> {
  const redis = createRedis(config, { maxRetriesPerRequest: 3 });
  const db = createPrisma(config.DATABASE_URL!);
  try {
    return await fn({ db, redis, prefix: redisKeyPrefix(config) });
  } finally {
    await db.$disconnect();
    redis.disconnect();
  }
}
