// Which Redis the meter talks to: one server (REDIS_URL), a Sentinel-managed master
// (REDIS_SENTINELS + REDIS_SENTINEL_NAME) or a Redis Cluster (REDIS_CLUSTER_NODES).
// Parses the host:port lists and refuses the combinations that would leave a
// reader guessing which one is meant (docs/redis.md).
import { isIP } from 'node:net';

export interface RedisNode {
  host: string;
  port: number;
}

export type RedisMode = 'single' | 'sentinel' | 'cluster';

/** The settings that decide the mode (a subset of Config). */
export interface RedisTopologySettings {
  REDIS_SENTINELS?: RedisNode[];
  REDIS_SENTINEL_NAME?: string;
  REDIS_CLUSTER_NODES?: RedisNode[];
  REDIS_PASSWORD?: string;
}

export class RedisNodeListError extends Error {
  override name = 'RedisNodeListError';
}

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;

/** An entry as an error shows it: anything before an `@` (user:password of a URL pasted by mistake) hidden. */
const shown = (entry: string) => JSON.stringify(entry.replace(/^.*@/, '***@'));

/** One `host:port` (`[v6]:port` for an IPv6 address), or an error naming what is wrong. */
function parseNode(entry: string): RedisNode | string {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(entry) ?? /^([^:[\]]+):(\d{1,5})$/.exec(entry);
  if (!m) return `${shown(entry)} is not host:port`;
  const [, host = '', portText = ''] = m;
  const port = Number(portText);
  if (port < 1 || port > 65_535) return `${shown(entry)}: port must be 1-65535`;
  const bracketed = entry.startsWith('[');
  if (bracketed ? isIP(host) !== 6 : isIP(host) !== 4 && !HOST_NAME.test(host))
    return `${shown(entry)}: ${shown(host)} is not a host name or IP address`;
  return { host, port };
}

/** A comma-separated `host:port` list; throws RedisNodeListError naming every bad entry. */
export function parseRedisNodes(text: string): RedisNode[] {
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (entries.length === 0) throw new RedisNodeListError('give at least one host:port');
  const parsed = entries.map(parseNode);
  const bad = parsed.filter((p): p is string => typeof p === 'string');
  if (bad.length > 0) throw new RedisNodeListError(bad.join('; '));
  return parsed as RedisNode[];
}

export function redisMode(s: RedisTopologySettings): RedisMode {
  if (s.REDIS_CLUSTER_NODES) return 'cluster';
  if (s.REDIS_SENTINELS) return 'sentinel';
  return 'single';
}

/**
 * The combinations refused, one message each. REDIS_URL has a default, so whether
 * it was set is read from the raw environment.
 */
export function redisTopologyProblems(s: RedisTopologySettings, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const urlSet = (env.REDIS_URL?.trim() ?? '') !== '';
  if (s.REDIS_SENTINELS && s.REDIS_CLUSTER_NODES)
    problems.push(
      'REDIS_SENTINELS, REDIS_CLUSTER_NODES: set one of them, not both (a Sentinel-managed master, or a Redis Cluster)',
    );
  if (s.REDIS_SENTINELS && !s.REDIS_SENTINEL_NAME)
    problems.push(
      'REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the master name the sentinels monitor)',
    );
  if (s.REDIS_SENTINEL_NAME && !s.REDIS_SENTINELS)
    problems.push('REDIS_SENTINEL_NAME: set without REDIS_SENTINELS (which sentinels to ask)');
  if (urlSet && (s.REDIS_SENTINELS || s.REDIS_CLUSTER_NODES))
    problems.push(
      `REDIS_URL: set together with ${s.REDIS_CLUSTER_NODES ? 'REDIS_CLUSTER_NODES' : 'REDIS_SENTINELS'}; ` +
        'REDIS_URL names a single Redis: unset it (or the other)',
    );
  if (s.REDIS_PASSWORD && !s.REDIS_SENTINELS && !s.REDIS_CLUSTER_NODES)
    problems.push(
      'REDIS_PASSWORD: only with REDIS_SENTINELS or REDIS_CLUSTER_NODES (a single Redis takes its password in REDIS_URL)',
    );
  return problems;
}
