// Acknowledging events only once replicas have them (REDIS_WAIT_REPLICAS). Redis
// replicates asynchronously: a primary that dies right after answering can take
// events it acknowledged with it. So after the write, `WAIT n timeout` runs on the
// very connection that wrote them (WAIT counts the replicas that have everything
// that connection wrote so far). On a cluster that is the connection to the node
// owning the meter's one slot (redis-prefix.ts), not whichever node ioredis would
// pick for a keyless command. If the connection changed in between (a reconnect
// after a failover), WAIT would be asked about a fresh connection that wrote
// nothing and answer too soon: that counts as not confirmed.
import type { Cluster, Redis } from 'ioredis';
import { NotReplicatedError } from '../producer/errors.js';
import { keySlot } from './key-slot.js';
import type { RedisClient } from './redis-connection.js';

export interface WaitReplicas {
  /** Replicas that must have the events before they are acknowledged (0: off). */
  replicas: number;
  /** Longest wait for them, ms. */
  timeoutMs: number;
}

function isCluster(client: RedisClient): client is Cluster {
  return client.isCluster === true;
}

/**
 * The connection that carries the commands on `prefix`'s keys: the client itself,
 * or, on a cluster, its connection to the master owning their slot (undefined
 * while the cluster does not know one).
 */
export function connectionForPrefix(client: RedisClient, prefix: string): Redis | undefined {
  if (!isCluster(client)) return client;
  const owner = client.slots[keySlot(`${prefix}:events`)]?.[0];
  return client.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner);
}

/** That connection, connected (a cluster connects to a node on its first command). */
async function connectedFor(client: RedisClient, prefix: string): Promise<Redis | undefined> {
  if (isCluster(client) && client.status !== 'ready') await client.ping().catch(() => {});
  const c = connectionForPrefix(client, prefix);
  if (c && c.status !== 'ready') await c.ping().catch(() => {});
  return c;
}

/**
 * Runs `write` (commands on `prefix`'s keys through `client`), then, when `wait`
 * asks for replicas, WAITs for them on the connection that carried the write.
 * Rejects with NotReplicatedError when fewer confirmed in time or the connection
 * changed; the write itself is not undone (a retry of the same events is harmless).
 */
export async function writeReplicated<T>(
  client: RedisClient,
  prefix: string,
  wait: WaitReplicas | undefined,
  write: () => Promise<T>,
): Promise<T> {
  if (!wait || wait.replicas <= 0) return write();
  const before = await connectedFor(client, prefix);
  const stream = before?.stream;
  const result = await write();
  const changed = () =>
    new NotReplicatedError(
      wait.replicas,
      0,
      'the connection to Redis changed while the events were written (a failover?): their replication is unknown; send them again (same eventIds)',
    );
  const conn = connectionForPrefix(client, prefix);
  if (!conn || conn !== before || conn.stream !== stream) throw changed();
  const confirmed = Number(await conn.wait(wait.replicas, wait.timeoutMs));
  if (conn.stream !== stream) throw changed();
  if (confirmed < wait.replicas) throw new NotReplicatedError(wait.replicas, confirmed);
  return result;
}
