// The charger's last-moment slot check: a call that would leave well after its
// rate-limiter slot (a busy event loop, a slow token fetch) takes a fresh slot
// first, so it cannot bunch with the calls slotted after it.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { type CallOptions, DouyinMarketClient, RateLimiter, type Slot } from '../../src/douyin/index.js';
import type { DecrUserRemainTimesInput } from '../../src/douyin/schemas.js';
import { insertEvents } from '../../src/ledger/events.js';
import { upsertKeys } from '../../src/ledger/keys.js';
import { createLogger } from '../../src/logger.js';
import { Charger } from '../../src/metering/charger.js';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { createTestDatabase, redisUrl, uniquePrefix } from '../support/services.js';

/** The real limiter, counting the slots it hands out. */
class CountingLimiter extends RateLimiter {
  slots = 0;
  override async acquire(signal?: AbortSignal, leadMs = 0): Promise<Slot> {
    const slot = await super.acquire(signal, leadMs);
    this.slots++;
    return slot;
  }
}

let db: PrismaClient;
let redis: Redis;
let sim: RunningSimulator;
let client: DouyinMarketClient;

beforeAll(async () => {
  db = createPrisma(await createTestDatabase('slot'));
  redis = new Redis(redisUrl());
  sim = await startSimulator();
  client = new DouyinMarketClient({
    baseUrl: sim.url,
    clientKey: 'sim-client-key',
    clientSecret: 'sim-client-secret',
    redis,
    redisPrefix: uniquePrefix('slot'),
  });
  // A token in hand and a warm connection: the first fetch alone can take longer
  // than the 20 ms a call may trail its slot.
  await client.getUserServicePurchaseList({ openId: 'warm-up', serviceId: 's1' });
});
afterAll(async () => {
  await client.close();
  await sim.close();
  await db.$disconnect();
  redis.disconnect();
});

/** Charges one fresh key whose call is held up `stallMs` (event loop blocked) before it is sent. */
async function chargeWithStall(openId: string, stallMs: number) {
  sim.setBalance({ openId, serviceId: 's1', serviceModeId: 'm1', remaining: 100 });
  const ids = await upsertKeys(db, [{ openId, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false }]);
  const keyId = [...ids.values()][0]!;
  await insertEvents(db, [
    {
      eventId: `${openId}-e1`,
      keyId,
      count: 2,
      occurredAt: null,
      enqueuedAt: new Date().toISOString(),
      attributes: null,
    },
  ]);
  const limiter = new CountingLimiter({ redis, key: uniquePrefix('slot-rl'), qps: 50 });
  const api = {
    decrUserRemainTimes: async (input: DecrUserRemainTimesInput, opts?: CallOptions) => {
      const blockedUntil = performance.now() + stallMs;
      while (performance.now() < blockedUntil) {} // the event loop is busy elsewhere
      return client.decrUserRemainTimes(input, opts);
    },
    getUserServicePurchaseList: client.getUserServicePurchaseList.bind(client),
  };
  const charger = new Charger({
    db,
    api,
    limiter,
    logger: createLogger({ level: 'silent' }),
    workerId: 'slot-test',
    insufficientPolicy: 'reject',
    windowMs: 200,
    maxEvents: 100,
    maxCount: 1_000,
    deadlineSec: 60,
    idempotencyWindowSec: 2_592_000,
    leaseMs: 30_000,
  });
  const outcome = await charger.chargeKey(keyId);
  return { outcome, slots: limiter.slots };
}

describe('Charger slot check', () => {
  it('a call 60 ms late waits for a fresh slot; a call on time does not', async () => {
    const late = await chargeWithStall('slot-late', 60);
    expect(late.outcome).toBe('charged');
    expect(late.slots).toBeGreaterThanOrEqual(2);

    // On time, the one slot is enough. A loaded machine can make any call late, so
    // of three such calls at least one must have needed no second slot.
    const onTime = [];
    for (const u of ['slot-a', 'slot-b', 'slot-c']) onTime.push(await chargeWithStall(u, 0));
    expect(onTime.map((r) => r.outcome)).toEqual(['charged', 'charged', 'charged']);
    expect(Math.min(...onTime.map((r) => r.slots))).toBe(1);

    const counts = sim.state().trades.map((t) => t.count);
    expect(counts).toEqual([2, 2, 2, 2]);
  });
});
