// Chargers driven one run at a time against the real ledger, Redis and the
// project's Douyin simulator, for tests that must hold a run at an exact step.
// The chargers run on plain pg, as in the worker; the tests read through Prisma.
import { Redis } from 'ioredis';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { type CallOptions, DouyinMarketClient, RateLimiter } from '../../src/douyin/index.js';
import type { DecrUserRemainTimesInput } from '../../src/douyin/schemas.js';
import { insertEvents } from '../../src/ledger/events.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { createPgLedger, type PgLedger } from '../../src/ledger/pg-ledger.js';
import { createLogger } from '../../src/logger.js';
import { Charger } from '../../src/metering/charger.js';
import type { ChargerOptions, MeterDouyinApi } from '../../src/metering/interfaces.js';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { createTestDatabase, redisUrl, uniquePrefix } from '../support/services.js';

export interface ChargerHarness {
  databaseUrl: string;
  /** Prisma, for the tests' own reads and fixtures. */
  db: PrismaClient;
  /** Plain pg, what the worker's chargers run on (src/ledger/pg-ledger.ts): the chargers here use it too. */
  ledger: PgLedger;
  redis: Redis;
  sim: RunningSimulator;
  client: DouyinMarketClient;
  /** A key with these events (counts) pending; returns its id. */
  seedKey(openId: string, counts: number[], remaining?: number): Promise<number>;
  charger(o?: Partial<ChargerOptions> & { api?: MeterDouyinApi; limiter?: RateLimiter }): Charger;
  limiter(): RateLimiter;
  close(): Promise<void>;
}

export async function startChargerHarness(label: string): Promise<ChargerHarness> {
  const databaseUrl = await createTestDatabase(label);
  const db = createPrisma(databaseUrl);
  const redis = new Redis(redisUrl());
  const sim = await startSimulator();
  const client = new DouyinMarketClient({
    baseUrl: sim.url,
    clientKey: 'sim-client-key',
    clientSecret: 'sim-client-secret',
    redis,
    redisPrefix: uniquePrefix(label),
  });
  let seq = 0;
  const ledger = createPgLedger(databaseUrl, { poolSize: 8 });
  const h: ChargerHarness = {
    databaseUrl,
    db,
    ledger,
    redis,
    sim,
    client,
    async seedKey(openId, counts, remaining = 1_000) {
      sim.setBalance({ openId, serviceId: 's1', serviceModeId: 'm1', remaining });
      const ids = await upsertKeys(db, [{ openId, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false }]);
      const keyId = [...ids.values()][0]!;
      await insertEvents(
        db,
        counts.map((count) => ({
          eventId: `${openId}-${seq++}`,
          keyId,
          count,
          occurredAt: null,
          enqueuedAt: new Date().toISOString(),
          attributes: null,
        })),
      );
      return keyId;
    },
    limiter: () => new RateLimiter({ redis, key: uniquePrefix(`${label}-rl`), qps: 1_000 }),
    charger({ api, limiter, ...o } = {}) {
      return new Charger({
        db: ledger,
        api: api ?? client,
        limiter: limiter ?? h.limiter(),
        logger: createLogger({ level: 'silent' }),
        workerId: `${label}-worker`,
        insufficientPolicy: 'reject',
        windowMs: 200,
        maxEvents: 1_000,
        maxCount: 1_000_000,
        deadlineSec: 60,
        idempotencyWindowSec: 2_592_000,
        leaseMs: 30_000,
        ...o,
      });
    },
    async close() {
      await client.close();
      await sim.close();
      await db.$disconnect();
      await ledger.$disconnect();
      redis.disconnect();
    },
  };
  return h;
}

/** The simulator's API with DecrUserRemainTimes answered by `intercept` first (it may throw). */
export function interceptDecr(
  client: DouyinMarketClient,
  intercept: (input: DecrUserRemainTimesInput) => void | Promise<void>,
): MeterDouyinApi {
  return {
    decrUserRemainTimes: async (input: DecrUserRemainTimesInput, opts?: CallOptions) => {
      await intercept(input);
      return client.decrUserRemainTimes(input, opts);
    },
    getUserServicePurchaseList: client.getUserServicePurchaseList.bind(client),
  };
}

/** A promise with its resolve, to hold a run at one step until the test lets it go. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}
