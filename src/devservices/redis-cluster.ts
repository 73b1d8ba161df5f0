// A throwaway Redis Cluster on loopback ports, for tests: `redis-server
// --cluster-enabled yes` processes in a temporary directory, joined with
// `redis-cli --cluster create`, ready once every node says cluster_state:ok (and
// every replica is in sync with its master).
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keySlot } from '../queue/key-slot.js';
import { execFileAsync, findBinary, freePort, waitFor } from './process.js';
import {
  parseInfo,
  type RedisNodeProcess,
  redisCommand,
  redisServerBinary,
  spawnRedisNode,
} from './redis-node.js';

export interface RedisClusterOptions {
  /** Masters (the slots are spread over them). Default 3. */
  masters?: number;
  /** Replicas of each master. Default 0. */
  replicasPerMaster?: number;
  /** requirepass/masterauth of every node (REDIS_PASSWORD). Default none. */
  password?: string;
}

export interface RedisClusterServer {
  /** Every node's port, in the order given to `--cluster create` (masters first). */
  readonly ports: number[];
  /** `127.0.0.1:port,…` of every node: a value for REDIS_CLUSTER_NODES. */
  readonly nodeList: string;
  readonly password?: string;
  /** Ports of the masters now (the nodes that own slots). */
  masters(): Promise<number[]>;
  /** Port of the master that owns the slot of `key` now. */
  masterOf(key: string): Promise<number>;
  /** One command on the node at `port`. */
  command(port: number, args: (string | number)[]): Promise<unknown>;
  /** Stops every node and removes the directory. */
  destroy(): Promise<void>;
}

export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisClusterServer> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 0;
  if (masters < 3) throw new Error('a Redis Cluster needs at least 3 masters');
  const bin = redisServerBinary();
  const cli = findBinary(
    'redis-cli',
    ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli'],
    'Install it with: apt-get install -y redis-tools (it comes with redis-server).',
  );
  const dir = await mkdtemp(join(tmpdir(), 'um-redis-cluster-'));
  const password = options.password;
  const auth = password ? ['--requirepass', password, '--masterauth', password] : [];
  const nodes: RedisNodeProcess[] = [];
  const destroy = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const [port, busPort] = [await freePort(), await freePort()];
      const nodeDir = join(dir, String(port));
      await mkdir(nodeDir);
      // The bus port is set apart (not port + 10000, which may be taken or out of range).
      // Node timeout short: a test cluster on loopback, failures are detected fast.
      const args = [
        ...['--port', String(port), '--bind', '127.0.0.1', '--dir', nodeDir],
        ...['--cluster-enabled', 'yes', '--cluster-port', String(busPort)],
        ...['--cluster-config-file', join(nodeDir, 'nodes.conf'), '--cluster-node-timeout', '5000'],
        ...['--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--daemonize', 'no'],
        ...['--maxmemory-policy', 'noeviction', ...auth],
      ];
      nodes.push(spawnRedisNode(bin, args, port));
    }
    const ask = (port: number, args: (string | number)[]) => redisCommand(port, args, password);
    for (const n of nodes)
      await waitFor(`cluster node on port ${n.port}`, async () => (await ask(n.port, ['PING'])) === 'PONG');
    await execFileAsync(
      cli,
      [
        ...(password ? ['-a', password, '--no-auth-warning'] : []),
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      { timeout: 30_000 },
    );
    for (const n of nodes) {
      await waitFor(`cluster_state:ok on port ${n.port}`, async () => {
        const info = parseInfo(await ask(n.port, ['CLUSTER', 'INFO']));
        return info.get('cluster_state') === 'ok' && Number(info.get('cluster_known_nodes')) === nodes.length;
      });
      await waitFor(`replication of the node on port ${n.port}`, async () => {
        const info = parseInfo(await ask(n.port, ['INFO', 'replication']));
        return info.get('role') === 'master' || info.get('master_link_status') === 'up';
      });
    }
  } catch (err) {
    await destroy();
    throw err;
  }

  const ports = nodes.map((n) => n.port);
  /** CLUSTER SLOTS: [from, to, [host, port, id], ...replicas] per range. */
  const slotRanges = async () =>
    (await redisCommand(ports[0]!, ['CLUSTER', 'SLOTS'], password)) as [
      number,
      number,
      [string, number, ...unknown[]],
    ][];
  return {
    ports,
    nodeList: ports.map((p) => `127.0.0.1:${p}`).join(','),
    password,
    command: (port, args) => redisCommand(port, args, password),
    async masters() {
      return [...new Set((await slotRanges()).map((r) => Number(r[2][1])))].sort((a, b) => a - b);
    },
    async masterOf(key) {
      const slot = keySlot(key);
      const range = (await slotRanges()).find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no node owns slot ${slot}`);
      return Number(range[2][1]);
    },
    destroy,
  };
}
