// `npm run cli -- douyin ...` as real child processes against the node:http fake
// and a real Redis: bad input exits 2 having sent nothing (not even a token fetch),
// success prints the result, a business error exits 1 with its code and logid, and
// two processes started together with a cold cache fetch the token once.

import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DOUYIN_PATHS } from '../../src/douyin/index.js';
import { redisUrl, uniquePrefix } from '../support/services.js';
import { envelope, type FakeDouyin, startFakeDouyin } from './fake-douyin.js';

const ROOT = new URL('../../', import.meta.url).pathname;
let fake: FakeDouyin;
let prefix: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string | undefined> = {}, viaNpm = false): Promise<Run> {
  const base: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(base)) if (/^(DOUYIN_|REDIS_|DATABASE_)/.test(k)) delete base[k];
  const [cmd, argv] = viaNpm
    ? ['npm', ['run', '-s', 'cli', '--', 'douyin', ...args]]
    : [process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'douyin', ...args]];
  const child = spawn(cmd, argv, {
    cwd: ROOT,
    env: {
      ...base,
      LOG_LEVEL: 'silent',
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: prefix,
      DOUYIN_BASE_URL: fake.url,
      DOUYIN_CLIENT_KEY: 'ck-cli',
      DOUYIN_CLIENT_SECRET: 'cli-secret-789',
      DOUYIN_TIMEOUT_MS: '5000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => {
    stdout += c;
  });
  child.stderr.on('data', (c) => {
    stderr += c;
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const decrArgs = (over: Record<string, string> = {}) => {
  const flags: Record<string, string> = {
    '--open-id': 'u1',
    '--service-id': 's1',
    '--service-mode-id': 'm1',
    '--count': '5',
    '--out-trade-no': 'cli-otn-1',
    ...over,
  };
  return Object.entries(flags)
    .filter(([, v]) => v !== '')
    .flat();
};

beforeAll(async () => {
  fake = await startFakeDouyin();
});

afterAll(async () => {
  await fake.close();
});

beforeEach(() => {
  fake.reset();
  prefix = uniquePrefix('cli');
});

describe('cli douyin', () => {
  it('bad input exits 2 and sends nothing at all', async () => {
    const cases: [string, string[]][] = [
      ['count 0', decrArgs({ '--count': '0' })],
      ['count -1', decrArgs({ '--count': '-1' })],
      ['count=-1', [...decrArgs({ '--count': '' }), '--count=-1']],
      ['count 1.5', decrArgs({ '--count': '1.5' })],
      ['count abc', decrArgs({ '--count': 'abc' })],
      ['count 2^31', decrArgs({ '--count': '2147483648' })],
      ['missing open-id', decrArgs({ '--open-id': '' })],
      ['65-char out-trade-no', decrArgs({ '--out-trade-no': 'x'.repeat(65) })],
      ['unknown flag', [...decrArgs(), '--bogus', '1']],
      ['count given twice', [...decrArgs(), '--count', '2147483647']],
      [
        'purchase time in seconds',
        [
          'insert-purchase',
          '--open-id',
          'u1',
          '--service-id',
          's1',
          '--service-mode-id',
          'm1',
          '--out-trade-no',
          'p1',
          '--period-type',
          '1',
          '--purchase-time',
          '1700000000',
        ],
      ],
    ];
    const runs = await Promise.all(
      cases.map(([, args]) => cli(args[0] === 'insert-purchase' ? args : ['decr', ...args])),
    );
    runs.forEach((r, i) => {
      expect(r.code, `${cases[i]![0]}: ${r.stderr}`).toBe(2);
      expect(r.stderr.length, cases[i]![0]).toBeGreaterThan(0);
      expect(r.stdout).toBe('');
    });
    expect(runs[6]!.stderr).toMatch(/--open-id/);
    expect(runs[7]!.stderr).toMatch(/out_trade_no/);
    expect(runs[9]!.stderr).toMatch(/--count given more than once/);
    expect(fake.requests).toHaveLength(0);
  });

  it('missing or invalid configuration exits 2 with the ConfigError message, nothing sent', async () => {
    const r = await cli(['decr', ...decrArgs()], {
      DOUYIN_CLIENT_SECRET: undefined,
      DOUYIN_ERROR_KINDS: 'bogus',
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/DOUYIN_CLIENT_SECRET: required/);
    expect(r.stderr).toMatch(/DOUYIN_ERROR_KINDS: /);
    expect(fake.requests).toHaveLength(0);
  });

  it('success prints the result JSON and exits 0 (run as `npm run -s cli -- douyin …`)', async () => {
    fake.handler = () => ({ json: envelope(0, {}, { logid: 'LOG-CLI-OK' }) });
    const r = await cli(['decr', ...decrArgs(), '--test-env'], {}, true);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      logid: 'LOG-CLI-OK',
      httpStatus: 200,
      errorCode: 0,
      description: '',
    });
    expect(fake.to(DOUYIN_PATHS.decrUserRemainTimes)[0]!.body).toStrictEqual({
      count: 5,
      is_test_env: true,
      open_id: 'u1',
      out_trade_no: 'cli-otn-1',
      service_id: 's1',
      service_mode_id: 'm1',
    });
  });

  it('purchases prints the list', async () => {
    fake.handler = () => ({
      json: envelope(0, {
        purchase_info_list: [{ service_id: 's1', service_mode_id: 'm1', remain_service_times: 9 }],
      }),
    });
    const r = await cli(['purchases', '--open-id', 'u1', '--service-id', 's1']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).purchaseInfoList).toEqual([
      { serviceId: 's1', serviceModeId: 'm1', remainServiceTimes: 9 },
    ]);
    expect(fake.to(DOUYIN_PATHS.getUserServicePurchaseList)[0]!.query).toEqual({
      open_id: 'u1',
      service_id: 's1',
      is_test_env: 'false',
    });
  });

  it('purchases --test-env asks in test mode', async () => {
    fake.handler = () => ({ json: envelope(0, { purchase_info_list: [] }) });
    const r = await cli(['purchases', '--open-id', 'u1', '--service-id', 's1', '--test-env']);
    expect(r.code, r.stderr).toBe(0);
    expect(fake.to(DOUYIN_PATHS.getUserServicePurchaseList)[0]!.query).toEqual({
      open_id: 'u1',
      service_id: 's1',
      is_test_env: 'true',
    });
  });

  it('a business error exits 1 with kind, code and logid as JSON on stderr', async () => {
    fake.handler = () => ({
      json: {
        data: { error_code: 2100005, description: 'invalid parameter' },
        extra: { error_code: 2100005, sub_error_code: 0, logid: 'LOG-CLI-ERR', now: 1648731843045 },
      },
    });
    const r = await cli([
      'delete-purchase',
      '--open-id',
      'u1',
      '--service-id',
      's1',
      '--service-mode-id',
      'm1',
      '--out-trade-no',
      'p1',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(JSON.parse(r.stderr)).toEqual({
      error: {
        kind: 'invalid_request',
        code: 2100005,
        subCode: 0,
        description: 'invalid parameter',
        logid: 'LOG-CLI-ERR',
        httpStatus: 200,
      },
    });
    expect(r.stderr).not.toContain('cli-secret-789');
  });

  it('two processes started at once with a cold cache fetch the token exactly once', async () => {
    fake.tokenHandler = async () => {
      // Slow enough that the second process surely finds the lock taken and waits.
      await sleep(1_500);
      return { json: { data: { access_token: 'tok-shared', error_code: 0, expires_in: 7200 } } };
    };
    const [a, b] = await Promise.all([
      cli(['decr', ...decrArgs({ '--out-trade-no': 'a-1' })]),
      cli(['decr', ...decrArgs({ '--out-trade-no': 'b-1' })]),
    ]);
    expect([a.code, b.code], a.stderr + b.stderr).toEqual([0, 0]);
    expect(fake.tokenHits()).toBe(1);
    const decrs = fake.to(DOUYIN_PATHS.decrUserRemainTimes);
    expect(decrs.map((d) => d.headers['access-token'])).toEqual(['tok-shared', 'tok-shared']);
  });
});
