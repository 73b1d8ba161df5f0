// `npm run cli -- status`: events and batches by status, queue counts, oldest pending event age, as JSON.
import { Redis } from 'ioredis';
import { createPrisma } from '../db/prisma.js';
import { getMeterStatus } from '../metering/status.js';
import { cliConfig } from './config.js';

export async function runStatusCommand(args: string[]): Promise<number> {
  if (args.length > 0) {
    process.stderr.write('usage: npm run cli -- status\n');
    return 2;
  }
  const config = cliConfig(['database']);
  if (!config) return 2;
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3 });
  const db = createPrisma(config.DATABASE_URL!);
  try {
    process.stdout.write(
      `${JSON.stringify(await getMeterStatus({ db, redis, prefix: config.REDIS_PREFIX }), null, 2)}\n`,
    );
    return 0;
  } finally {
    await db.$disconnect();
    redis.disconnect();
  }
}
