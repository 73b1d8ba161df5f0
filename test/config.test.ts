// The configuration module: every variable documented (.env.example and
// docs/configuration.md), every bad one named.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, configSchema, loadConfig } from '../src/config.js';

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
