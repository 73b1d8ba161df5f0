// A whole pipeline for tests: a fresh database, a unique Redis prefix, the
// project's Douyin simulator, workers (in-process or as child processes that can
// be SIGKILLed), a producer, and the exact-accounting checks every test ends with.
// Redis is the shared test server, or whatever `redisEnv` names (a Sentinel set or
// a cluster from src/devservices/).

import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { type Config, loadConfig } from '../../src/config.js';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';

import type { UsageEventInput } from '../../src/events/schema.js';
import { createLogger } from '../../src/logger.js';
import { type MeterWorker, startMeterWorker } from '../../src/metering/worker.js';
import { createProducer, type Producer } from '../../src/producer/producer.js';
import { createRedis, type RedisClient } from '../../src/queue/redis-connection.js';
import { redisKeyPrefix } from '../../src/queue/redis-prefix.js';
import { type RunningSimulator, type SimulatorFaults, startSimulator } from '../../src/simulator/index.js';
import { createTestDatabase, redisUrl as sharedRedisUrl, uniquePrefix } from './services.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface PipelineOptions {
  label: string;
  faults?: Partial<SimulatorFaults>;
  env?: Record<string, string>;
  redisUrl?: string;
  /**
   * The Redis variables to use instead of REDIS_URL: REDIS_SENTINELS and
   * REDIS_SENTINEL_NAME, or REDIS_CLUSTER_NODES (with REDIS_PASSWORD, REDIS_WAIT_*
   * as needed). The producer waits for REDIS_WAIT_REPLICAS like the server does.
   * Default: REDIS_URL = `redisUrl`, or the shared test Redis.
   */
  redisEnv?: Record<string, string>;
  databaseUrl?: string;
}

export interface Pipeline {
  env: Record<string, string>;
  config: Config;
  sim: RunningSimulator;
  db: PrismaClient;
  redis: RedisClient;
  /** The key prefix the meter uses (redisKeyPrefix: REDIS_PREFIX, in a hash tag on a cluster). */
  keyPrefix: string;
  producer: Producer;
  /** Unique events sent so far (eventId -> event), the ground truth for exactness. */
  sent: Map<string, UsageEventInput>;
  send(events: UsageEventInput[]): Promise<void>;
  startWorker(env?: Record<string, string>): Promise<MeterWorker>;
  spawnWorker(env?: Record<string, string>): ChildProcess;
  waitUntilSettled(timeoutMs?: number): Promise<void>;
  expectExactTotals(): Promise<void>;
  close(): Promise<void>;
}

export const SIM_KEY = 'sim-client-key';
export const SIM_SECRET = 'sim-client-secret';

export async function startPipeline(o: PipelineOptions): Promise<Pipeline> {
  const databaseUrl = o.databaseUrl ?? (await createTestDatabase(o.label));
  const redisEnv = o.redisEnv ?? { REDIS_URL: o.redisUrl ?? sharedRedisUrl() };
  const sim = await startSimulator({ clientKey: SIM_KEY, clientSecret: SIM_SECRET, faults: o.faults });
  const env: Record<string, string> = {
    DOUYIN_BASE_URL: sim.url,
    DOUYIN_CLIENT_KEY: SIM_KEY,
    DOUYIN_CLIENT_SECRET: SIM_SECRET,
    DOUYIN_TIMEOUT_MS: '2000',
    DOUYIN_QPS: '500',
    ...redisEnv,
    REDIS_PREFIX: uniquePrefix(o.label),
    DATABASE_URL: databaseUrl,
    DATABASE_POOL_SIZE: '8',
    METER_BATCH_WINDOW_MS: '200',
    METER_RETRY_BASE_MS: '50',
    METER_RETRY_MAX_MS: '1000',
    METER_STALL_SEC: '3',
    METER_CHARGE_CONCURRENCY: '16',
    LOG_LEVEL: 'warn',
    ...o.env,
  };
  const config = loadConfig(['database', 'douyin'], env);
  const db = createPrisma(databaseUrl);
  const redis = createRedis(config, { maxRetriesPerRequest: null });
  redis.on('error', () => {});
  const producer = createProducer({
    connection: redis,
    prefix: env.REDIS_PREFIX,
    waitReplicas: config.REDIS_WAIT_REPLICAS,
    waitTimeoutMs: config.REDIS_WAIT_TIMEOUT_MS,
  });
  const sent = new Map<string, UsageEventInput>();
  const workers: MeterWorker[] = [];
  const children = new Set<ChildProcess>();

  const realKeyIds = async () =>
    (await db.meterKey.findMany({ where: { isTestEnv: false }, select: { id: true } })).map((k) => k.id);
  const p: Pipeline = {
    env,
    config,
    sim,
    db,
    redis,
    keyPrefix: redisKeyPrefix(config),
    producer,
    sent,
    async send(events) {
      await producer.recordMany(events);
      for (const e of events) if (!sent.has(e.eventId)) sent.set(e.eventId, e);
    },
    async startWorker(extra = {}) {
      const w = await startMeterWorker({
        config: loadConfig(['database', 'douyin'], { ...env, ...extra }),
        logger: createLogger({ level: env.LOG_LEVEL, name: 'test-worker' }),
      });
      workers.push(w);
      return w;
    },
    spawnWorker(extra = {}) {
      const childEnv = { ...process.env, ...env, ...extra };
      // A REDIS_URL of the test run's own must not meet the Sentinel or Cluster settings.
      if (env.REDIS_URL === undefined) delete childEnv.REDIS_URL;
      const child = spawn(process.execPath, ['--import', 'tsx', 'workers/worker.ts'], {
        cwd: repoRoot,
        env: childEnv,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr?.on('data', () => {}); // drained; warn-level logs go to stdout
      children.add(child);
      child.once('exit', () => children.delete(child));
      return child;
    },
    async waitUntilSettled(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const rows = await db.$queryRaw<{ unsettled: number; total: number; open: number }[]>`
          SELECT (SELECT count(*)::int FROM usage_event_status WHERE status IN ('pending', 'batched')) AS unsettled,
                 (SELECT count(*)::int FROM usage_event) AS total,
                 (SELECT count(*)::int FROM charge_batch WHERE status = 'open') AS open`;
        const r = rows[0]!;
        if (r.unsettled === 0 && r.open === 0 && r.total === sent.size) return;
        if (Date.now() > deadline) {
          throw new Error(
            `not settled after ${timeoutMs} ms: ${r.total}/${sent.size} events in the ledger, ${r.unsettled} unsettled, ${r.open} open batches`,
          );
        }
        await sleep(100);
      }
    },
    async expectExactTotals() {
      // What each key should have been charged: the sum of its unique events.
      // Test-mode events deduct nothing on Douyin (test whitelist), so only real ones count.
      const expected = new Map<string, number>();
      for (const e of sent.values()) {
        if (e.isTestEnv) continue;
        const k = `${e.openId}|${e.serviceId}|${e.serviceModeId}`;
        expected.set(k, (expected.get(k) ?? 0) + e.count);
      }
      const state = sim.state();
      const deducted = new Map<string, number>(
        state.balances.map((b) => [`${b.openId}|${b.serviceId}|${b.serviceModeId}`, b.deducted]),
      );
      for (const [k, v] of expected)
        expect({ key: k, deducted: deducted.get(k) ?? 0 }).toEqual({ key: k, deducted: v });
      // The ledger agrees with Douyin, batch by batch.
      const charged = await db.chargeBatch.findMany({
        where: { status: 'charged', resolvedAs: null, key: { isTestEnv: false } },
        select: { outTradeNo: true, count: true },
      });
      const trades = new Map(state.trades.map((t) => [t.outTradeNo, t.count]));
      expect(charged.length).toBe(trades.size);
      for (const b of charged) expect(trades.get(b.outTradeNo)).toBe(b.count);
      // The meter kept to the platform's wire contract throughout.
      expect(state.contractViolations).toEqual([]);
      const [events] = await db.$queryRaw<{ uses: number | null }[]>`
        SELECT sum(count)::int AS uses FROM usage_event_status
        WHERE status = 'charged' AND key_id = ANY(${await realKeyIds()}::int[])`;
      expect(events!.uses ?? 0).toBe([...expected.values()].reduce((a, b) => a + b, 0));
    },
    async close() {
      for (const c of children) c.kill('SIGKILL');
      await producer.close().catch(() => {});
      for (const w of workers) await w.close().catch(() => {});
      await sim.close();
      await db.$disconnect();
      redis.disconnect();
    },
  };
  return p;
}

/** Balances large enough that nobody runs out. */
export function fundUsers(
  sim: RunningSimulator,
  users: string[],
  serviceId = 's1',
  serviceModeId = 'm1',
  remaining = 1e9,
) {
  for (const openId of users) sim.setBalance({ openId, serviceId, serviceModeId, remaining });
}

export function makeEvents(n: number, users: string[], prefix: string, countOf = (i: number) => 1 + (i % 3)) {
  return Array.from({ length: n }, (_, i) => ({
    eventId: `${prefix}-${i}`,
    openId: users[i % users.length]!,
    serviceId: 's1',
    serviceModeId: 'm1',
    count: countOf(i),
  }));
}

/** Resolves when the child exits (after a SIGKILL, say). */
export function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}
