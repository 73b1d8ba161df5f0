// A throwaway Sentinel-managed Redis on loopback ports, for tests: one master, its
// replica(s) and three sentinels (quorum 2) with short timeouts, so that a master
// killed with SIGKILL is replaced by a replica within a few seconds. The sentinels
// say which node is the master; the tests kill it and watch the failover.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './process.js';
import {
  parseInfo,
  type RedisNodeProcess,
  redisCommand,
  redisServerBinary,
  sentinelCommand,
  spawnRedisNode,
} from './redis-node.js';

export interface RedisSentinelOptions {
  /** Replicas of the master. Default 1. */
  replicas?: number;
  /** Default 'meter-master'. */
  masterName?: string;
  /**
   * A sentinel finds an instance down after this long without an answer, ms. Default
   * 2000: at 1000 (the sentinels' ping period) a just-promoted master can be found
   * down before its first ping was even sent, and fails over again.
   */
  downAfterMs?: number;
  /** Sentinel's failover-timeout, ms. Default 5000. */
  failoverTimeoutMs?: number;
  /** requirepass of the master and replicas (REDIS_PASSWORD). Default none. */
  password?: string;
}

export interface RedisSentinelSet {
  readonly masterName: string;
  /** `127.0.0.1:port,…` of the sentinels: a value for REDIS_SENTINELS. */
  readonly sentinelList: string;
  readonly password?: string;
  /** Ports of the data nodes (master and replicas), as started. */
  readonly dataPorts: number[];
  /** Port of the master the sentinels name now (asking each live sentinel until one answers). */
  currentMaster(): Promise<number>;
  /** SIGKILLs the current master; resolves with its port once the process is gone. */
  killMaster(): Promise<number>;
  /** Waits until the sentinels name a master other than `oldPort` and that node is a master. */
  waitForFailover(oldPort: number, timeoutMs?: number): Promise<number>;
  /** Whether the data node at `port` is running (not killed). */
  isAlive(port: number): boolean;
  /**
   * A partition between the current master and its replicas: their links are
   * dropped and they cannot come back while it lives (their replication user is
   * switched off there). They stay up and answer the sentinels.
   */
  cutReplication(): Promise<void>;
  /** One command on the data node at `port`. */
  command(port: number, args: (string | number)[]): Promise<unknown>;
  destroy(): Promise<void>;
}

const SENTINELS = 3;
const QUORUM = 2;
/** Replicas authenticate as this ACL user, so that a master can refuse them alone. */
const REPLICATION_USER = 'replication';
const REPLICATION_PASSWORD = 'replication-secret';

export async function startRedisSentinel(options: RedisSentinelOptions = {}): Promise<RedisSentinelSet> {
  const masterName = options.masterName ?? 'meter-master';
  const replicas = options.replicas ?? 1;
  const password = options.password;
  const dir = await mkdtemp(join(tmpdir(), 'um-redis-sentinel-'));
  const bin = redisServerBinary();
  const data = new Map<number, RedisNodeProcess>();
  const sentinels: RedisNodeProcess[] = [];
  const destroy = async () => {
    await Promise.all([...data.values(), ...sentinels].map((n) => n.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  const ask = (port: number, args: (string | number)[]) => redisCommand(port, args, password);
  const askSentinel = async (args: (string | number)[]): Promise<unknown> => {
    let last: unknown;
    for (const s of sentinels.filter((n) => n.alive)) {
      try {
        return await redisCommand(s.port, args, undefined, 1_000);
      } catch (err) {
        last = err;
      }
    }
    throw last ?? new Error('no sentinel is running');
  };

  try {
    const dataNode = async (replicaOf?: number) => {
      const port = await freePort();
      const args = [
        ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', `dump-${port}.rdb`],
        ...['--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--daemonize', 'no'],
        ...['--maxmemory-policy', 'noeviction'],
        ...['--user', REPLICATION_USER, 'on', `>${REPLICATION_PASSWORD}`, '~*', '&*', '+@all'],
        ...['--masteruser', REPLICATION_USER, '--masterauth', REPLICATION_PASSWORD],
        ...(password ? ['--requirepass', password] : []),
        ...(replicaOf ? ['--replicaof', '127.0.0.1', String(replicaOf)] : []),
      ];
      data.set(port, spawnRedisNode(bin, args, port));
      await waitFor(`redis on port ${port}`, async () => (await ask(port, ['PING'])) === 'PONG');
      return port;
    };
    const master = await dataNode();
    for (let i = 0; i < replicas; i++) await dataNode(master);
    for (const port of [...data.keys()].slice(1))
      await waitFor(`replica on port ${port} in sync`, async () => {
        const info = parseInfo(await ask(port, ['INFO', 'replication']));
        return info.get('master_link_status') === 'up';
      });

    const sentinel = sentinelCommand();
    for (let i = 0; i < SENTINELS; i++) {
      const port = await freePort();
      // Sentinel rewrites its configuration file: one writable file each.
      const conf = join(dir, `sentinel-${port}.conf`);
      await writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          'protected-mode no',
          'daemonize no',
          `dir ${dir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${master} ${QUORUM}`,
          `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 2_000}`,
          `sentinel failover-timeout ${masterName} ${options.failoverTimeoutMs ?? 5_000}`,
          `sentinel parallel-syncs ${masterName} 1`,
          ...(password ? [`sentinel auth-pass ${masterName} ${password}`] : []),
          '',
        ].join('\n'),
      );
      sentinels.push(spawnRedisNode(sentinel.bin, [conf, ...sentinel.args], port));
    }
    // Ready when every sentinel knows the replicas and the other sentinels (they
    // find each other through the master, every 2 s): only then can they fail over.
    for (const s of sentinels)
      await waitFor(`sentinel on port ${s.port}`, async () => {
        const flat = (await redisCommand(s.port, ['SENTINEL', 'MASTER', masterName])) as string[];
        const fields = new Map<string, string>();
        for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i]!, flat[i + 1]!);
        return (
          Number(fields.get('num-slaves')) === replicas &&
          Number(fields.get('num-other-sentinels')) === SENTINELS - 1
        );
      });
  } catch (err) {
    await destroy();
    throw err;
  }

  const node = (port: number) => {
    const n = data.get(port);
    if (!n) throw new Error(`no data node on port ${port}`);
    return n;
  };
  const set: RedisSentinelSet = {
    masterName,
    sentinelList: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
    password,
    dataPorts: [...data.keys()],
    async currentMaster() {
      const addr = (await askSentinel(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName])) as [
        string,
        string,
      ];
      return Number(addr[1]);
    },
    async killMaster() {
      const port = await set.currentMaster();
      await node(port).kill();
      return port;
    },
    async waitForFailover(oldPort, timeoutMs = 30_000) {
      let port = oldPort;
      await waitFor(
        `a failover away from port ${oldPort}`,
        async () => {
          port = await set.currentMaster();
          if (port === oldPort) return false;
          const info = parseInfo(await ask(port, ['INFO', 'replication']));
          return info.get('role') === 'master';
        },
        timeoutMs,
      );
      return port;
    },
    isAlive: (port) => node(port).alive,
    async cutReplication() {
      const master = await set.currentMaster();
      await ask(master, ['ACL', 'SETUSER', REPLICATION_USER, 'off']);
      await ask(master, ['CLIENT', 'KILL', 'TYPE', 'replica']);
    },
    command: (port, args) => ask(port, args),
    destroy,
  };
  return set;
}
