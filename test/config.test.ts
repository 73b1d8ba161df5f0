// The configuration module: every variable documented (.env.example and
// docs/configuration.md), every bad one named.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, configSchema, loadConfig } from '../src/config.js';
import { hashedPart, keySlot } from '../src/queue/key-slot.js';
import { hashTagged, redisKeyPrefix } from '../src/queue/redis-prefix.js';
import { redisMode } from '../src/queue/redis-topology.js';

const read = (file: string) => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');

/** The cells of a markdown table row (an escaped `\|` stays inside its cell). */
const cells = (row: string) =>
  row
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim());

/**
 * The first column of docs/configuration.md's main table, the one headed
 * `variable | default | meaning` (not the table of what the server and the demo
 * read, which also names compose-only variables such as POSTGRES_USER).
 */
const configTableFirstColumn = (markdown: string): string[] => {
  let tables = 0;
  let inTable = false;
  const rows: string[] = [];
  for (const line of markdown.split('\n')) {
    const [first = '', ...rest] = cells(line);
    if (!line.startsWith('|')) inTable = false;
    else if ([first, ...rest].join('|') === 'variable|default|meaning') {
      tables++;
      inTable = true;
    } else if (inTable && !/^:?-+:?$/.test(first)) rows.push(first);
  }
  expect(tables).toBe(1);
  return rows;
};

describe('configuration', () => {
  it('every variable is listed in .env.example', () => {
    const envExample = read('.env.example');
    const variables = Object.keys(configSchema.shape);
    expect(variables.length).toBeGreaterThan(20);
    for (const v of variables) {
      expect({ v, inEnvExample: new RegExp(`^#? ?${v}=`, 'm').test(envExample) }).toEqual({
        v,
        inEnvExample: true,
      });
    }
  });

  it("docs/configuration.md's table lists exactly the variables of the schema", () => {
    const firstColumn = configTableFirstColumn(read('docs/configuration.md'));
    expect(firstColumn.length).toBeGreaterThan(20);
    // A cell names one variable or several: `A` or `A`, `B`.
    expect(firstColumn.filter((cell) => !/^`[A-Z][A-Z0-9_]*`(, `[A-Z][A-Z0-9_]*`)*$/.test(cell))).toEqual([]);
    const listed = firstColumn.flatMap((cell) =>
      [...cell.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1] ?? ''),
    );
    const variables = Object.keys(configSchema.shape);
    expect({
      notInTable: variables.filter((v) => !listed.includes(v)),
      notInSchema: listed.filter((v) => !variables.includes(v)),
      listedTwice: listed.filter((v, i) => listed.indexOf(v) !== i),
    }).toEqual({ notInTable: [], notInSchema: [], listedTwice: [] });
  });

  it('names every bad variable in one error', () => {
    const err = (() => {
      try {
        loadConfig(['server'], {
          SESSION_SECRET: 'short',
          SIGNIN_MAX_FAILURES: '0',
          DOUYIN_QPS: 'many',
          REDIS_URL: 'localhost:6379',
        });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    for (const v of [
      'SESSION_SECRET',
      'SIGNIN_MAX_FAILURES',
      'DOUYIN_QPS',
      'REDIS_URL',
      'API_KEYS',
      'DASHBOARD_USERS',
    ])
      expect(problems).toContain(v);
    expect(problems).not.toContain('short'); // the value of a secret is not echoed
  });

  it("refuses a retry deadline longer than half of Douyin's idempotency window", () => {
    expect(loadConfig([], {}).DOUYIN_IDEMPOTENCY_WINDOW_SEC).toBe(2_592_000);
    expect(() => loadConfig([], { METER_RETRY_DEADLINE_SEC: '1296001' })).toThrow(
      /METER_RETRY_DEADLINE_SEC: 1296001 is more than half of DOUYIN_IDEMPOTENCY_WINDOW_SEC \(2592000\)/,
    );
    expect(loadConfig([], { METER_RETRY_DEADLINE_SEC: '1296000' }).METER_RETRY_DEADLINE_SEC).toBe(1_296_000);
    expect(() =>
      loadConfig([], { DOUYIN_IDEMPOTENCY_WINDOW_SEC: '60', METER_RETRY_DEADLINE_SEC: '31' }),
    ).toThrow(/more than half/);
  });

  it('refuses a value that is a comment (what docker compose makes of `KEY=  # note`)', () => {
    expect(() =>
      loadConfig([], { SESSION_SECRET: '# signs operator sessions (>= 32 chars); same on every server' }),
    ).toThrow(/SESSION_SECRET: looks like a comment/);
    expect(loadConfig([], { DASHBOARD_USERS: 'ops:#not-a-comment' }).DASHBOARD_USERS).toBe(
      'ops:#not-a-comment',
    );
  });

  it('reads TRUST_PROXY as off, a hop count or a list of proxies; refuses true and non-addresses', () => {
    const trust = (v: string) => loadConfig([], { TRUST_PROXY: v }).TRUST_PROXY;
    expect(loadConfig([], {}).TRUST_PROXY).toBe(false);
    expect(trust('false')).toBe(false);
    expect(trust('FALSE')).toBe(false);
    expect(trust('0')).toBe(false);
    expect(trust('1')).toBe(1);
    expect(trust('10.0.0.0/8, 127.0.0.1,::1')).toEqual(['10.0.0.0/8', '127.0.0.1', '::1']);
    expect(() => trust('true')).toThrow(/TRUST_PROXY: true would believe any client/);
    expect(() => trust('10.0.0.0/33,proxy.local')).toThrow(
      /not an IP address or CIDR: 10.0.0.0\/33, proxy.local/,
    );
  });

  it('NOTIFY_ALLOWED_HOSTS: addresses, CIDR ranges and host names; anything the guard cannot hold is named', () => {
    const ok = loadConfig([], {
      NOTIFY_ALLOWED_HOSTS: ' 127.0.0.1, 10.0.0.0/8,[::1], fd00::/8 ,hooks.internal',
    });
    expect(ok.NOTIFY_ALLOWED_HOSTS).toEqual([
      '127.0.0.1',
      '10.0.0.0/8',
      '[::1]',
      'fd00::/8',
      'hooks.internal',
    ]);
    expect(loadConfig([], {}).NOTIFY_ALLOWED_HOSTS).toEqual([]);
    for (const bad of [
      '::ffff:10.0.0.0/104',
      '10.0.0.0/33',
      '10.0.0.0/8/1',
      'host name',
      'a_b.example',
      'x.example/24',
    ]) {
      const err = (() => {
        try {
          loadConfig([], { NOTIFY_ALLOWED_HOSTS: `127.0.0.1,${bad}` });
        } catch (e) {
          return e as ConfigError;
        }
      })();
      expect({ bad, problems: err?.problems.join('\n') }).toEqual({
        bad,
        problems: expect.stringMatching(
          new RegExp(`NOTIFY_ALLOWED_HOSTS.*${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`),
        ),
      });
    }
  });
});

describe('Redis: one server, Sentinel or Cluster', () => {
  const problemsOf = (env: Record<string, string>): string => {
    try {
      loadConfig([], env);
      return '';
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).problems.join('\n');
    }
  };

  it('reads REDIS_URL by default, host:port lists for Sentinel and Cluster', () => {
    const single = loadConfig([], {});
    expect(redisMode(single)).toBe('single');
    expect(single).toMatchObject({ REDIS_WAIT_REPLICAS: 0, REDIS_WAIT_TIMEOUT_MS: 1_000 });
    const sentinel = loadConfig([], {
      REDIS_SENTINELS: ' 10.0.0.1:26379, sentinel-b.internal:26380,[::1]:26381, ',
      REDIS_SENTINEL_NAME: 'meter-master',
      REDIS_PASSWORD: 'pw',
      REDIS_WAIT_REPLICAS: '1',
    });
    expect(redisMode(sentinel)).toBe('sentinel');
    expect(sentinel.REDIS_SENTINELS).toEqual([
      { host: '10.0.0.1', port: 26379 },
      { host: 'sentinel-b.internal', port: 26380 },
      { host: '::1', port: 26381 },
    ]);
    const cluster = loadConfig([], { REDIS_CLUSTER_NODES: 'redis-0:6379', REDIS_URL: '' });
    expect(redisMode(cluster)).toBe('cluster');
    expect(cluster.REDIS_CLUSTER_NODES).toEqual([{ host: 'redis-0', port: 6379 }]);
  });

  it('names every bad host:port entry', () => {
    const problems = problemsOf({
      REDIS_CLUSTER_NODES: 'good:1,noport,:6379,h:0,h:65536,bad host:1,[10.0.0.1]:1,::1:6379',
    });
    expect(problems).toMatch(/^REDIS_CLUSTER_NODES: /);
    for (const bad of [
      '"noport"',
      '":6379"',
      '"h:0"',
      '"h:65536"',
      '"bad host:1"',
      '"[10.0.0.1]:1"',
      '"::1:6379"',
    ])
      expect(problems).toContain(bad);
    expect(problems).not.toContain('"good:1"');
    // A URL pasted by mistake: its password is not repeated in the message.
    const pasted = problemsOf({ REDIS_CLUSTER_NODES: 'redis://:s3cret@h:6379,user:pw2@h2:6379' });
    expect(pasted).toMatch(/^REDIS_CLUSTER_NODES: /);
    expect(pasted).not.toMatch(/s3cret|pw2/);
    // Compose service names have underscores.
    expect(
      loadConfig([], { REDIS_CLUSTER_NODES: 'redis_1:6379', REDIS_URL: '' }).REDIS_CLUSTER_NODES,
    ).toEqual([{ host: 'redis_1', port: 6379 }]);
    expect(problemsOf({ REDIS_SENTINELS: ' , ', REDIS_SENTINEL_NAME: 'm' })).toMatch(
      /REDIS_SENTINELS: give at least one host:port/,
    );
  });

  it('refuses an ambiguous combination, saying which', () => {
    expect(
      problemsOf({ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'm', REDIS_CLUSTER_NODES: 'b:2' }),
    ).toMatch(/REDIS_SENTINELS, REDIS_CLUSTER_NODES: set one of them, not both/);
    expect(problemsOf({ REDIS_SENTINELS: 'a:1' })).toMatch(
      /REDIS_SENTINEL_NAME: required with REDIS_SENTINELS/,
    );
    expect(problemsOf({ REDIS_SENTINEL_NAME: 'm' })).toMatch(
      /REDIS_SENTINEL_NAME: set without REDIS_SENTINELS/,
    );
    // REDIS_URL has a default: only an explicit one is in the way.
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'b:2', REDIS_URL: 'redis://127.0.0.1:6379' })).toMatch(
      /REDIS_URL: set together with REDIS_CLUSTER_NODES; REDIS_URL names a single Redis/,
    );
    expect(
      problemsOf({ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'm', REDIS_URL: 'redis://x:1' }),
    ).toMatch(/REDIS_URL: set together with REDIS_SENTINELS/);
    expect(problemsOf({ REDIS_PASSWORD: 'hunter2' })).toMatch(
      /REDIS_PASSWORD: only with REDIS_SENTINELS or REDIS_CLUSTER_NODES/,
    );
    expect(problemsOf({ REDIS_PASSWORD: 'hunter2' })).not.toContain('hunter2'); // a secret is not echoed
    expect(problemsOf({ REDIS_WAIT_TIMEOUT_MS: '0' })).toMatch(/REDIS_WAIT_TIMEOUT_MS/);
    expect(problemsOf({ REDIS_WAIT_REPLICAS: '-1' })).toMatch(/REDIS_WAIT_REPLICAS/);
  });

  it('puts the key prefix in a hash tag on a cluster only, so that every key is in one slot', () => {
    expect(redisKeyPrefix(loadConfig([], { REDIS_PREFIX: 'um' }))).toBe('um');
    expect(
      redisKeyPrefix(
        loadConfig([], { REDIS_PREFIX: 'um', REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'm' }),
      ),
    ).toBe('um');
    const prefix = redisKeyPrefix(loadConfig([], { REDIS_PREFIX: 'um', REDIS_CLUSTER_NODES: 'a:1' }));
    expect(prefix).toBe('{um}');
    expect(hashTagged(prefix)).toBe('{um}');
    const keys = [
      'events:1',
      'charge:meta',
      'douyin:ratelimit',
      'douyin:token-lock:ck',
      'signin-failures:1.2.3.4',
    ];
    expect(new Set(keys.map((k) => keySlot(`${prefix}:${k}`)))).toEqual(new Set([keySlot('um')]));
  });

  it('computes the cluster hash slot as the specification does', () => {
    // CRC16/XMODEM of "123456789" is 0x31C3; the rest are the specification's hash-tag examples.
    expect(keySlot('123456789')).toBe(0x31c3 % 16_384);
    expect(keySlot('foo')).toBe(12_182);
    expect(keySlot('{user1000}.following')).toBe(keySlot('{user1000}.followers'));
    expect(hashedPart('foo{}{bar}')).toBe('foo{}{bar}');
    expect(hashedPart('foo{{bar}}zap')).toBe('{bar');
    expect(hashedPart('foo{bar}{zap}')).toBe('bar');
  });
});
