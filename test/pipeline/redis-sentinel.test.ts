// The whole pipeline on a Sentinel-managed Redis (a master, three replicas, three
// sentinels, short timeouts) started by the harness, with REDIS_WAIT_REPLICAS=1:
// the master is SIGKILLed while events are sent and charged, a replica takes
// over, and the same worker process carries on. Every event the producer had
// acknowledged is charged exactly once; events whose send failed are sent again
// with the same eventIds and are charged once too. A second failover, to replicas
// cut off from the master, shows what WAIT is for: an event acknowledged without it
// is lost, one acknowledged with it is not.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisSentinelSet, startRedisSentinel } from '../../src/devservices/redis-sentinel.js';
import type { UsageEventInput } from '../../src/events/schema.js';
import { NotReplicatedError } from '../../src/producer/errors.js';
import { createProducer } from '../../src/producer/producer.js';
import { createRedis } from '../../src/queue/redis-connection.js';
import { exited, fundUsers, makeEvents, type Pipeline, startPipeline } from '../support/pipeline.js';

const PASSWORD = 'sentinel-secret';

describe('on Redis Sentinel', () => {
  let set: RedisSentinelSet;
  let p: Pipeline;
  const users = Array.from({ length: 10 }, (_, i) => `se${i}`);

  /** Sends until acknowledged: a failed send (failover, replicas not confirming) is sent again, same eventIds. */
  const sendUntilAcknowledged = async (events: UsageEventInput[], failures: Error[]) => {
    for (;;) {
      try {
        return await p.send(events);
      } catch (err) {
        failures.push(err as Error);
        if (failures.length > 200) throw err;
        await sleep(100);
      }
    }
  };
  const chargedUses = async () =>
    (
      await p.db.$queryRaw<{ uses: number | null }[]>`
      SELECT sum(count)::int AS uses FROM usage_event_status WHERE status = 'charged'`
    )[0]!.uses ?? 0;

  beforeAll(async () => {
    set = await startRedisSentinel({ replicas: 3, password: PASSWORD });
    p = await startPipeline({
      label: 'sentinel',
      redisEnv: {
        REDIS_SENTINELS: set.sentinelList,
        REDIS_SENTINEL_NAME: set.masterName,
        REDIS_PASSWORD: PASSWORD,
        REDIS_WAIT_REPLICAS: '1',
        REDIS_WAIT_TIMEOUT_MS: '500',
      },
      faults: { latencyMs: 5 },
    });
    fundUsers(p.sim, users);
  }, 60_000);
  afterAll(async () => {
    await p?.close();
    await set?.destroy();
  });

  it('carries on after the master is SIGKILLed mid-run; acknowledged events are charged exactly once', async () => {
    const worker = p.spawnWorker();
    const failures: Error[] = [];
    // The worker is up once it has charged something.
    await sendUntilAcknowledged(makeEvents(100, users, 'first'), failures);
    for (let i = 0; (await chargedUses()) === 0; i++) {
      expect(i).toBeLessThan(300);
      await sleep(100);
    }
    // Events flow (and are charged) before, during and after the failover.
    let round = 0;
    let until = Number.POSITIVE_INFINITY;
    const flow = (async () => {
      for (; round < until; round++) {
        await sendUntilAcknowledged(makeEvents(100, users, `f${round}`), failures);
        await sleep(50);
      }
    })();
    await sleep(1_000);
    const charged = await chargedUses();
    const first = await set.currentMaster();
    expect(await set.killMaster()).toBe(first);
    const promoted = await set.waitForFailover(first);
    expect(promoted).not.toBe(first);
    // Ten more rounds acknowledged by the new master, then the flow stops.
    until = round + 10;
    await flow;
    await p.waitUntilSettled(40_000);
    await p.expectExactTotals();
    // The same worker process charged what came after the failover.
    expect(await chargedUses()).toBeGreaterThan(charged);
    expect(worker.exitCode).toBeNull();
    worker.kill('SIGTERM');
    await exited(worker);
  }, 180_000);

  it('replicas cut off from the master: what WAIT confirmed survives the failover, what it did not is sent again', async () => {
    // No worker for now, so that the events stay in Redis only, as a backlog would.
    const master = await set.currentMaster();
    const replicas = set.dataPorts.filter((port) => port !== master && set.isAlive(port));
    expect(replicas.length).toBe(2);
    const confirmed = makeEvents(100, users, 'confirmed');
    await p.send(confirmed);

    // A partition: the replicas lose their link to the master, which still answers.
    await set.cutReplication();
    const behind = makeEvents(100, users, 'behind');
    const err = await p.send(behind).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotReplicatedError);
    expect(err).toMatchObject({ wanted: 1, confirmed: 0 });
    // The control: a producer that does not wait is told its events are stored.
    const unguardedConnection = createRedis(p.config, { maxRetriesPerRequest: null });
    unguardedConnection.on('error', () => {});
    const unguarded = createProducer({ connection: unguardedConnection, prefix: p.env.REDIS_PREFIX });
    const control = makeEvents(100, users, 'control');
    await unguarded.recordMany(control);
    await unguarded.close();
    unguardedConnection.disconnect();

    expect(await set.killMaster()).toBe(master);
    expect(replicas).toContain(await set.waitForFailover(master));

    // What the producer was not told is stored is sent again (acknowledged once the
    // other replica follows the new master); then a worker runs.
    await sendUntilAcknowledged(behind, []);
    await p.startWorker();
    await p.waitUntilSettled(40_000);
    await p.expectExactTotals();
    const inLedger = async (events: UsageEventInput[]) =>
      (
        await p.db.$queryRaw<{ n: number }[]>`
          SELECT count(*)::int AS n FROM usage_event WHERE event_id = ANY(${events.map((e) => e.eventId)}::text[])`
      )[0]!.n;
    expect(await inLedger(confirmed)).toBe(100);
    expect(await inLedger(behind)).toBe(100);
    // Acknowledged without WAIT, gone with the master: the fault is real.
    expect(await inLedger(control)).toBe(0);
  }, 180_000);
});
