// A Douyin client talking to a running simulator with the simulator's own
// credentials (the defaults unless given), its token cache under a unique prefix.
import type { Redis } from 'ioredis';
import { DouyinMarketClient } from '../../src/douyin/index.js';
import type { RunningSimulator } from '../../src/simulator/index.js';
import { uniquePrefix } from './services.js';

export function simulatorClient(
  sim: RunningSimulator,
  redis: Redis,
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
