// The whole pipeline on a Redis Cluster (3 masters, a replica each, a password)
// started by the harness: the SDK and POST /v1/events, workers (one in this
// process, one spawned), charging, the ledger; every user charged exactly once.
// The meter's keys must all be in one slot on one node, that node being one the
// configuration did not name, and acknowledgements wait for a replica (WAIT on
// that node's connection).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisClusterServer, startRedisCluster } from '../../src/devservices/redis-cluster.js';
import { NotReplicatedError } from '../../src/producer/errors.js';
import { createProducer } from '../../src/producer/producer.js';
import { keySlot } from '../../src/queue/key-slot.js';
import { createRedis } from '../../src/queue/redis-connection.js';
import { connectionForPrefix } from '../../src/queue/replication.js';
import { startTestServer, type TestServer } from '../server/helpers.js';
import {
  exited,
  fundUsers,
  makeEvents,
  type Pipeline,
  repoRoot,
  startPipeline,
} from '../support/pipeline.js';
import { uniquePrefix } from '../support/services.js';

const PASSWORD = 'cluster-secret';

describe('on a Redis Cluster', () => {
  let cluster: RedisClusterServer;
  let p: Pipeline;
  let server: TestServer;
  /** The master that owns the meter's slot, and one that does not (the only node configured). */
  let owner: number;
  let configured: number;
  let masters: number[];
  const users = Array.from({ length: 12 }, (_, i) => `cl${i}`);

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, password: PASSWORD });
    const prefix = uniquePrefix('cluster');
    owner = await cluster.masterOf(`{${prefix}}`);
    masters = await cluster.masters();
    expect(masters.length).toBe(3);
    expect(masters).toContain(owner);
    configured = masters.find((port) => port !== owner)!;
    p = await startPipeline({
      label: 'cluster',
      // One node only, and not the owner of the meter's slot: ioredis finds the rest.
      redisEnv: {
        REDIS_CLUSTER_NODES: `127.0.0.1:${configured}`,
        REDIS_PASSWORD: PASSWORD,
        REDIS_WAIT_REPLICAS: '1',
      },
      env: { REDIS_PREFIX: prefix },
      faults: { latencyMs: 5 },
    });
    fundUsers(p.sim, users);
    // A server as start.ts makes it: its own connection (closed with it), from the same settings.
    server = await startTestServer({
      label: 'cluster',
      databaseUrl: p.env.DATABASE_URL,
      redis: createRedis(p.config, { maxRetriesPerRequest: 2 }),
      prefix: p.keyPrefix,
      waitReplicas: { replicas: 1, timeoutMs: 1_000 },
    });
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    await p?.close();
    await cluster?.destroy();
  });

  it('charges every event once through the SDK and POST /v1/events, every key in one slot', async () => {
    expect(p.keyPrefix).toBe(`{${p.env.REDIS_PREFIX}}`);
    // WAIT goes to the connection of the node that owns the slot (known once connected).
    await p.redis.ping();
    expect(connectionForPrefix(p.redis, p.keyPrefix)?.options.port).toBe(owner);

    const sendRounds = async (from: number, to: number) => {
      for (let round = from; round < to; round++) {
        await p.send(makeEvents(200, users, `sdk${round}`));
        const events = makeEvents(100, users, `http${round}`);
        const res = await server.postEvents(events);
        expect(res.status).toBe(202);
        expect((await res.json()) as { accepted: number }).toMatchObject({ accepted: 100 });
        for (const e of events) p.sent.set(e.eventId, e);
      }
    };
    // First a worker process alone, configured from the environment as in production...
    const child = p.spawnWorker();
    await sendRounds(0, 3);
    await p.waitUntilSettled(30_000);
    // ...then a second one in this process beside it.
    await p.startWorker();
    await sendRounds(3, 6);
    // The operator side works on the cluster too (sign-in throttle, pause flag, queue counts).
    const status = await server.api('/api/status');
    expect(status.status).toBe(200);
    expect(((await status.json()) as { charging: { paused: boolean } }).charging.paused).toBe(false);

    await p.waitUntilSettled(45_000);
    await p.expectExactTotals();
    expect(p.sent.size).toBe(1_800);

    // Every key of the meter is in its one slot, on the owner; the other masters hold nothing.
    const slot = keySlot(p.keyPrefix);
    expect(await cluster.command(owner, ['CLUSTER', 'KEYSLOT', p.keyPrefix])).toBe(slot);
    // In one MULTI: the workers still run, and keys with a TTL come and go meanwhile.
    const node = new Redis({ host: '127.0.0.1', port: owner, password: PASSWORD });
    const [[, inSlot], [, onNode], [, keys]] = (await node
      .multi()
      .call('CLUSTER', 'COUNTKEYSINSLOT', slot)
      .dbsize()
      .call('CLUSTER', 'GETKEYSINSLOT', slot, 10_000)
      .exec()) as [[null, number], [null, number], [null, string[]]];
    node.disconnect();
    expect({ onNode, listed: keys.length }).toEqual({ onNode: inSlot, listed: inSlot });
    expect(keys.every((k) => k.startsWith(`${p.keyPrefix}:`))).toBe(true);
    for (const part of [':events:', ':charge:', ':douyin:ratelimit', ':douyin:token:', ':signin-failures:'])
      expect({ part, found: keys.some((k) => k.includes(part)) }).toEqual({ part, found: true });
    for (const port of masters.filter((port) => port !== owner))
      expect({ port, keys: await cluster.command(port, ['DBSIZE']) }).toEqual({ port, keys: 0 });

    expect(child.exitCode).toBeNull();
    child.kill('SIGTERM');
    await exited(child);
  }, 180_000);

  it('refuses to acknowledge events fewer replicas confirmed; a retry is charged once', async () => {
    const events = makeEvents(50, users, 'unconfirmed');
    // Two replicas asked for, each master has one: stored, but not acknowledged.
    const strict = createProducer({
      connection: p.redis,
      prefix: p.env.REDIS_PREFIX,
      waitReplicas: 2,
      waitTimeoutMs: 200,
    });
    const err = await strict.recordMany(events.slice(0, 25)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotReplicatedError);
    expect(err).toMatchObject({ wanted: 2, confirmed: 1 });
    await strict.close();

    const strictServer = await startTestServer({
      label: 'cluster-strict',
      databaseUrl: p.env.DATABASE_URL,
      redis: createRedis(p.config, { maxRetriesPerRequest: 2 }),
      prefix: p.keyPrefix,
      waitReplicas: { replicas: 2, timeoutMs: 200 },
    });
    try {
      const res = await strictServer.postEvents(events.slice(25));
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({
        error: { code: 'not_replicated', details: { replicasWanted: 2, replicasConfirmed: 1 } },
      });
    } finally {
      await strictServer.close();
    }

    // The producer sends them again, same eventIds, where one replica is enough.
    await p.send(events);
    await p.waitUntilSettled(30_000);
    await p.expectExactTotals();
  }, 180_000);

  it('an operator’s pause and resume wait for the replicas too: unconfirmed is a 503, in force on the master', async () => {
    const strictServer = await startTestServer({
      label: 'cluster-pause',
      databaseUrl: p.env.DATABASE_URL,
      redis: createRedis(p.config, { maxRetriesPerRequest: 2 }),
      prefix: p.keyPrefix,
      waitReplicas: { replicas: 2, timeoutMs: 200 },
    });
    try {
      const refused = await strictServer.api('/api/charging/pause', {
        method: 'POST',
        body: { reason: 'incident' },
      });
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({
        error: { code: 'not_replicated', details: { replicasWanted: 2, replicasConfirmed: 1 } },
      });
      // It is in force (on the master), and the audit says it was not confirmed.
      expect(await (await server.api('/api/charging')).json()).toMatchObject({
        paused: true,
        reason: 'incident',
      });
      const audit = await p.db.operatorAudit.findMany({ where: { action: 'charging.pause' } });
      expect(audit.map((a) => a.details)).toContainEqual({ replicated: 'no' });
    } finally {
      await strictServer.close();
    }
    // The CLI the same way: exit 1, it says so; the resume is in force on the master.
    const cli = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'charging', 'resume'],
      {
        cwd: repoRoot,
        env: {
          PATH: process.env.PATH,
          ...p.env,
          REDIS_WAIT_REPLICAS: '2',
          REDIS_WAIT_TIMEOUT_MS: '200',
          USER: 'carol',
        },
      },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/in force on the Redis master: run the command again/);
    expect(await (await server.api('/api/charging')).json()).toEqual({ paused: false });
    const cliAudit = await p.db.operatorAudit.findMany({ where: { actor: 'cli:carol' } });
    expect(cliAudit.map((a) => [a.action, a.details])).toEqual([['charging.resume', { replicated: 'no' }]]);
    // One replica is enough for the server of this deployment: confirmed, 200.
    const resumed = await server.api('/api/charging/resume', { method: 'POST', body: {} });
    expect(resumed.status).toBe(200);
    expect(await resumed.json()).toEqual({ paused: false });
  }, 60_000);
});
