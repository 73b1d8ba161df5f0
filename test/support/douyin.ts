// A Douyin client talking to a running simulator with the simulator's own
// credentials (the defaults unless given), its token cache under a unique prefix.
import type { PrismaClient } from '../../src/db/prisma.js';
import { DouyinMarketClient } from '../../src/douyin/index.js';
import { formBatch, settleBatch } from '../../src/ledger/batches.js';
import type { RedisClient } from '../../src/queue/redis-connection.js';
import type { RunningSimulator } from '../../src/simulator/index.js';
import { uniquePrefix } from './services.js';

export function simulatorClient(
  sim: RunningSimulator,
  redis: RedisClient,
  label: string,
  o: { clientKey?: string; clientSecret?: string; timeoutMs?: number } = {},
): DouyinMarketClient {
  return new DouyinMarketClient({
    baseUrl: sim.url,
    clientKey: o.clientKey ?? 'sim-client-key',
    clientSecret: o.clientSecret ?? 'sim-client-secret',
    redis,
    redisPrefix: uniquePrefix(label),
    ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
  });
}

/**
 * Charges the key's pending uses as the worker would, in one step: a batch, Douyin's
 * deduction under its out_trade_no, the batch settled. Returns the batch's count.
 */
export async function chargePending(
  db: PrismaClient,
  client: DouyinMarketClient,
  key: { id: number; openId: string; serviceId: string; serviceModeId: string },
): Promise<number> {
  const { batch } = await formBatch(db, {
    keyId: key.id,
    outTradeNo: `T-${key.id}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
    maxEvents: 10_000,
    maxCount: 1_000_000,
    deadlineSec: 60,
  });
  if (!batch) throw new Error('fixture: the key has no pending events');
  await client.decrUserRemainTimes({
    openId: key.openId,
    serviceId: key.serviceId,
    serviceModeId: key.serviceModeId,
    count: batch.count,
    outTradeNo: batch.outTradeNo,
  });
  await settleBatch(db, null, batch.id, { status: 'charged' });
  return batch.count;
}
