// The client on the wire, against an independent node:http fake that records
// every request: exact field names and JSON types, headers, query names, the base
// path prefix, success and error parsing with logid, HTTP and socket failures,
// timeouts, the one token retry, and no secrets in logs.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DOUYIN_PATHS,
  type DouyinCallEvent,
  type DouyinClientOptions,
  DouyinError,
  DouyinMarketClient,
  DouyinRequestError,
} from '../../src/douyin/index.js';
import { redactPaths } from '../../src/logger.js';
import { redisUrl, uniquePrefix } from '../support/services.js';
import { envelope, type FakeDouyin, startFakeDouyin, TOKEN_PATH } from './fake-douyin.js';

const SECRET = 'wire-secret-456';
let fake: FakeDouyin;
let redis: Redis;
let client: DouyinMarketClient;
let events: DouyinCallEvent[];
let logText: string;

const decr = { openId: 'u1', serviceId: 's1', serviceModeId: 'm1', count: 7, outTradeNo: 'otn-7' };

function makeClient(extra: Partial<DouyinClientOptions> = {}): DouyinMarketClient {
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logText += chunk.toString();
      cb();
    },
  });
  return new DouyinMarketClient({
    baseUrl: fake.url,
    clientKey: 'ck-wire',
    clientSecret: SECRET,
    redis,
    redisPrefix: uniquePrefix('wire'),
    timeoutMs: 2_000,
    logger: pino({ level: 'trace', redact: { paths: redactPaths, censor: '[redacted]' } }, sink),
    onCall: (e) => events.push(e),
    ...extra,
  });
}

beforeAll(async () => {
  fake = await startFakeDouyin({ prefix: '/api-prefix' });
  redis = new Redis(redisUrl());
});

afterAll(async () => {
  await fake.close();
  redis.disconnect();
});

beforeEach(() => {
  fake.reset();
  events = [];
  logText = '';
  client = makeClient();
});

afterEach(async () => {
  await client.close();
  // Tokens and secrets never reach the logs.
  expect(logText).not.toContain(SECRET);
  expect(logText).not.toMatch(/tok-\d/);
});

describe('wire format', () => {
  it('decr: POST, exact snake_case fields and JSON types, access-token header, base path prefix', async () => {
    fake.handler = () => ({ json: envelope(0, {}, { logid: 'LOG-DECR', now: 1683277168 }) });
    const res = await client.decrUserRemainTimes({ ...decr, isTestEnv: true });
    expect(res).toEqual({ logid: 'LOG-DECR', httpStatus: 200, errorCode: 0, description: '' });

    const [tok] = fake.to(TOKEN_PATH);
    expect(tok?.path).toBe('/api-prefix/oauth/client_token/');
    const [r] = fake.to(DOUYIN_PATHS.decrUserRemainTimes);
    expect(r).toBeDefined();
    expect(r!.method).toBe('POST');
    expect(r!.path).toBe('/api-prefix/market/service/user/remaintimes/decr/');
    expect(r!.headers['access-token']).toBe('tok-1');
    expect(r!.headers['content-type']).toBe('application/json');
    expect(r!.body).toStrictEqual({
      count: 7,
      is_test_env: true,
      open_id: 'u1',
      out_trade_no: 'otn-7',
      service_id: 's1',
      service_mode_id: 'm1',
    });
    const body = r!.body as Record<string, unknown>;
    expect(typeof body.count).toBe('number');
    expect(typeof body.is_test_env).toBe('boolean');
    expect(events.map((e) => [e.method, e.outcome])).toEqual([
      ['clientToken', 'success'],
      ['decrUserRemainTimes', 'success'],
    ]);
  });

  it('decr without isTestEnv sends is_test_env false', async () => {
    await client.decrUserRemainTimes(decr);
    expect((fake.to(DOUYIN_PATHS.decrUserRemainTimes)[0]!.body as { is_test_env: unknown }).is_test_env).toBe(
      false,
    );
  });

  it('insert purchase: exact fields, optional ones only when given', async () => {
    const base = {
      openId: 'u1',
      serviceId: 's1',
      serviceModeId: 'm1',
      outTradeNo: 'imp-1',
      periodType: 2,
      purchaseTime: 1_700_000_000_123,
    };
    await client.insertPurchaseInfo({ ...base, duration: 30, usageTimes: 100 });
    await client.insertPurchaseInfo(base);
    const [full, bare] = fake.to(DOUYIN_PATHS.insertPurchaseInfo);
    expect(full!.method).toBe('POST');
    expect(full!.headers['access-token']).toBe('tok-1');
    expect(full!.body).toStrictEqual({
      open_id: 'u1',
      out_trade_no: 'imp-1',
      period_type: 2,
      purchase_time: 1_700_000_000_123,
      service_id: 's1',
      service_mode_id: 'm1',
      duration: 30,
      usage_times: 100,
    });
    expect(bare!.body).toStrictEqual({
      open_id: 'u1',
      out_trade_no: 'imp-1',
      period_type: 2,
      purchase_time: 1_700_000_000_123,
      service_id: 's1',
      service_mode_id: 'm1',
    });
  });

  it('delete purchase: exact fields', async () => {
    await client.deletePurchaseInfo({
      openId: 'u1',
      serviceId: 's1',
      serviceModeId: 'm1',
      outTradeNo: 'imp-1',
    });
    const [r] = fake.to(DOUYIN_PATHS.deletePurchaseInfo);
    expect(r!.method).toBe('POST');
    expect(r!.headers['access-token']).toBe('tok-1');
    expect(r!.body).toStrictEqual({
      open_id: 'u1',
      out_trade_no: 'imp-1',
      service_id: 's1',
      service_mode_id: 'm1',
    });
  });

  it('purchase list: GET with query open_id, service_id and is_test_env, list parsed, logid kept', async () => {
    fake.handler = () => ({
      json: envelope(
        0,
        {
          purchase_info_list: [
            {
              service_id: 's 1',
              service_mode_id: 'm1',
              remain_service_times: 42,
              expire_time: 1731536000000,
              x: 1,
            },
            { service_id: 's 1', service_mode_id: 'm2' },
          ],
        },
        { logid: 'LOG-LIST', now: 1648731843045, unknown_extra: true },
      ),
    });
    const res = await client.getUserServicePurchaseList({ openId: 'u/1', serviceId: 's&1' });
    expect(res).toEqual({
      logid: 'LOG-LIST',
      httpStatus: 200,
      errorCode: 0,
      description: '',
      purchaseInfoList: [
        { serviceId: 's 1', serviceModeId: 'm1', remainServiceTimes: 42, expireTime: 1731536000000 },
        { serviceId: 's 1', serviceModeId: 'm2' },
      ],
    });
    const [r] = fake.to(DOUYIN_PATHS.getUserServicePurchaseList);
    expect(r!.method).toBe('GET');
    expect(r!.headers['access-token']).toBe('tok-1');
    expect(r!.queryNames.sort()).toEqual(['is_test_env', 'open_id', 'service_id']);
    expect(r!.query).toEqual({ open_id: 'u/1', service_id: 's&1', is_test_env: 'false' });
    expect(r!.rawBody).toBe('');
  });

  it('purchase list in test mode sends is_test_env=true', async () => {
    fake.handler = () => ({ json: envelope(0, { purchase_info_list: [] }) });
    await client.getUserServicePurchaseList({ openId: 'u1', serviceId: 's1', isTestEnv: true });
    expect(fake.to(DOUYIN_PATHS.getUserServicePurchaseList)[0]!.query).toEqual({
      open_id: 'u1',
      service_id: 's1',
      is_test_env: 'true',
    });
  });

  it('a list answer without purchase_info_list is an empty list', async () => {
    fake.handler = () => ({ json: envelope(0) });
    const res = await client.getUserServicePurchaseList({ openId: 'u1', serviceId: 's1' });
    expect(res.purchaseInfoList).toEqual([]);
  });

  it('invalid input throws DouyinRequestError before anything is sent (no token fetch either)', async () => {
    await expect(client.decrUserRemainTimes({ ...decr, count: 0 })).rejects.toBeInstanceOf(
      DouyinRequestError,
    );
    await expect(client.decrUserRemainTimes({ ...decr, outTradeNo: 'x'.repeat(65) })).rejects.toBeInstanceOf(
      DouyinRequestError,
    );
    await expect(
      client.insertPurchaseInfo({ ...decr, outTradeNo: 'p', periodType: 1, purchaseTime: 1_700_000_000 }),
    ).rejects.toBeInstanceOf(DouyinRequestError);
    await expect(client.getUserServicePurchaseList({ openId: '', serviceId: 's1' })).rejects.toBeInstanceOf(
      DouyinRequestError,
    );
    expect(fake.requests).toHaveLength(0);
  });
});

describe('failures', () => {
  it('a business error: DouyinError with code, sub code, logid, kind; not retried', async () => {
    fake.handler = () => ({
      json: {
        data: { error_code: 2119001, description: 'insufficient' },
        extra: { error_code: 2119001, sub_error_code: 12, logid: 'LOG-ERR', now: 1683277168 },
      },
    });
    const err = await client.decrUserRemainTimes(decr).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DouyinError);
    expect(err).toMatchObject({
      kind: 'insufficient_balance',
      errorCode: 2119001,
      subErrorCode: 12,
      description: 'insufficient',
      logid: 'LOG-ERR',
      httpStatus: 200,
      retryable: false,
    });
    expect(fake.to(DOUYIN_PATHS.decrUserRemainTimes)).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({
      method: 'decrUserRemainTimes',
      outcome: 'error',
      errorCode: 2119001,
    });
  });

  it('configured error kinds apply to real answers', async () => {
    await client.close();
    client = makeClient({ errorKinds: { 21001234: 'conflict' } });
    fake.handler = () => ({ json: envelope(21001234) });
    await expect(client.decrUserRemainTimes(decr)).rejects.toMatchObject({
      kind: 'conflict',
      errorCode: 21001234,
    });
  });

  it('a 200 without a numeric data.error_code is a protocol error on all four endpoints: transient, logid kept, not retried', async () => {
    const calls: [string, () => Promise<unknown>][] = [
      [DOUYIN_PATHS.decrUserRemainTimes, () => client.decrUserRemainTimes(decr)],
      [
        DOUYIN_PATHS.insertPurchaseInfo,
        () =>
          client.insertPurchaseInfo({
            openId: 'u1',
            serviceId: 's1',
            serviceModeId: 'm1',
            outTradeNo: 'imp-1',
            periodType: 1,
            purchaseTime: 1_700_000_000_000,
          }),
      ],
      [
        DOUYIN_PATHS.deletePurchaseInfo,
        () =>
          client.deletePurchaseInfo({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', outTradeNo: 'i' }),
      ],
      [
        DOUYIN_PATHS.getUserServicePurchaseList,
        () => client.getUserServicePurchaseList({ openId: 'u1', serviceId: 's1' }),
      ],
    ];
    const bodies: [string, unknown, string | null][] = [
      ['{"data":{}}', { data: {} }, null],
      ['{"extra":{"logid":"x"}}', { extra: { logid: 'x' } }, 'x'],
      ['error_code "abc"', { data: { error_code: 'abc' }, extra: { logid: 'L-ABC' } }, 'L-ABC'],
      ['a JSON string', 'success', null],
      ['a JSON array', [{ error_code: 0 }], null],
    ];
    for (const [path, run] of calls) {
      for (const [name, body, logid] of bodies) {
        fake.handler = () => ({ json: body });
        const before = fake.to(path).length;
        const err = await run().catch((e: unknown) => e);
        expect(err, `${path} ${name}`).toBeInstanceOf(DouyinError);
        const e = err as DouyinError;
        expect({ path, name, kind: e.kind, retryable: e.retryable, logid: e.logid ?? null }).toEqual({
          path,
          name,
          kind: 'transient',
          retryable: true,
          logid,
        });
        expect(e.description, `${path} ${name}`).toMatch(/^protocol error: /);
        expect(fake.to(path).length - before).toBe(1);
      }
    }
    expect(events.filter((e) => e.method !== 'clientToken').every((e) => e.outcome === 'error')).toBe(true);
  });

  it('HTTP 503 with HTML: transient, not retried', async () => {
    fake.handler = () => ({ status: 503, text: '<html>unavailable</html>' });
    await expect(client.decrUserRemainTimes(decr)).rejects.toMatchObject({
      kind: 'transient',
      httpStatus: 503,
    });
    expect(fake.to(DOUYIN_PATHS.decrUserRemainTimes)).toHaveLength(1);
  });

  it('HTTP 429: rate_limited', async () => {
    fake.handler = () => ({ status: 429, text: 'slow down' });
    await expect(client.decrUserRemainTimes(decr)).rejects.toMatchObject({
      kind: 'rate_limited',
      httpStatus: 429,
    });
  });

  it('a 200 whose body is not JSON (a proxy): transient', async () => {
    fake.handler = () => ({ status: 200, text: '<html>captive portal</html>' });
    await expect(client.decrUserRemainTimes(decr)).rejects.toMatchObject({
      kind: 'transient',
      httpStatus: 200,
    });
  });

  it('the connection destroyed without an answer: network', async () => {
    fake.handler = () => 'destroy';
    const err = await client.decrUserRemainTimes(decr).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'network', retryable: true });
    expect(fake.to(DOUYIN_PATHS.decrUserRemainTimes)).toHaveLength(1);
  });

  it('connection refused: network', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    // Token cached so the refused request is the business call itself.
    const prefix = uniquePrefix('wire');
    await redis.set(
      `${prefix}:douyin:token:ck-wire`,
      JSON.stringify({ token: 'cached', expiresAt: Date.now() + 3.6e6 }),
    );
    const c = new DouyinMarketClient({
      baseUrl: `http://127.0.0.1:${port}/`,
      clientKey: 'ck-wire',
      clientSecret: SECRET,
      redis,
      redisPrefix: prefix,
    });
    try {
      await expect(c.decrUserRemainTimes(decr)).rejects.toMatchObject({ kind: 'network' });
    } finally {
      await c.close();
    }
  });

  it('no answer within timeoutMs: timeout', async () => {
    await client.close();
    client = makeClient({ timeoutMs: 300 });
    await client.tokens.getToken();
    fake.handler = () => 'hang';
    await expect(client.decrUserRemainTimes(decr)).rejects.toMatchObject({
      kind: 'timeout',
      retryable: true,
    });
  });

  it('headers arrive but the body never completes: timeout', async () => {
    await client.close();
    client = makeClient({ timeoutMs: 300 });
    await client.tokens.getToken();
    fake.handler = () => 'stall-body';
    await expect(client.decrUserRemainTimes(decr)).rejects.toMatchObject({ kind: 'timeout' });
  });

  it("the caller's AbortSignal ends the call as a timeout", async () => {
    await client.tokens.getToken();
    fake.handler = () => 'hang';
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await expect(client.decrUserRemainTimes(decr, { signal: ac.signal })).rejects.toMatchObject({
      kind: 'timeout',
      description: 'aborted by the caller',
    });
  });

  it('an expired-token answer: invalidate, refresh, retry once, success', async () => {
    fake.handler = (req) =>
      req.headers['access-token'] === 'tok-1'
        ? { json: envelope(28001008, {}, { logid: 'LOG-EXPIRED' }) }
        : { json: envelope(0, {}, { logid: 'LOG-OK' }) };
    const res = await client.decrUserRemainTimes(decr);
    expect(res.logid).toBe('LOG-OK');
    expect(fake.tokenHits()).toBe(2);
    const calls = fake.to(DOUYIN_PATHS.decrUserRemainTimes);
    expect(calls.map((c) => c.headers['access-token'])).toEqual(['tok-1', 'tok-2']);
    expect(calls[1]!.body).toStrictEqual(calls[0]!.body);
  });

  it('beforeSend runs right before each request, the retry after a token refresh included', async () => {
    fake.handler = (req) =>
      req.headers['access-token'] === 'tok-1'
        ? { json: envelope(28001008, {}, { logid: 'LOG-EXPIRED' }) }
        : { json: envelope(0, {}, { logid: 'LOG-OK' }) };
    const seenBefore: number[] = [];
    const beforeSend = async () => {
      seenBefore.push(fake.to(DOUYIN_PATHS.decrUserRemainTimes).length);
    };
    await client.decrUserRemainTimes(decr, { beforeSend });
    // Called before the first request (none sent yet) and before the retry (one sent).
    expect(seenBefore).toEqual([0, 1]);
  });

  it('a beforeSend that throws sends nothing', async () => {
    fake.handler = () => ({ json: envelope(0) });
    const beforeSend = async () => {
      throw new Error('late for its slot');
    };
    await expect(client.decrUserRemainTimes(decr, { beforeSend })).rejects.toBeInstanceOf(DouyinError);
    expect(fake.to(DOUYIN_PATHS.decrUserRemainTimes)).toHaveLength(0);
  });

  it('a token refused twice: retried only once, then auth', async () => {
    fake.handler = () => ({ json: envelope(28001003, {}, { logid: 'LOG-WRONG' }) });
    await expect(client.decrUserRemainTimes(decr)).rejects.toMatchObject({
      kind: 'auth',
      errorCode: 28001003,
      logid: 'LOG-WRONG',
    });
    expect(fake.to(DOUYIN_PATHS.decrUserRemainTimes)).toHaveLength(2);
    expect(fake.tokenHits()).toBe(2);
  });

  it('a replacement token refused too: no more token fetches for a minute, then one', async () => {
    const prefix = uniquePrefix('wire-guard');
    const c = makeClient({ redisPrefix: prefix });
    try {
      fake.handler = () => ({ json: envelope(28001003, {}, { logid: 'LOG-WRONG' }) });
      await expect(c.decrUserRemainTimes(decr)).rejects.toMatchObject({ kind: 'auth' });
      expect(fake.tokenHits()).toBe(2); // the first token and its one replacement
      // Later calls are refused at once: no retry, no fetch, however many there are.
      for (let i = 0; i < 3; i++) {
        await expect(c.decrUserRemainTimes(decr)).rejects.toMatchObject({
          kind: 'auth',
          errorCode: 28001003,
        });
      }
      expect(fake.tokenHits()).toBe(2);
      expect(fake.to(DOUYIN_PATHS.decrUserRemainTimes)).toHaveLength(5);

      // A minute on (the replacement's fetchedAt moved back), a refusal is replaced again.
      const key = `${prefix}:douyin:token:ck-wire`;
      const entry = JSON.parse((await redis.get(key))!);
      expect(entry.afterRefusal).toBe(true);
      await redis.set(key, JSON.stringify({ ...entry, fetchedAt: Date.now() - 61_000 }), 'EX', 3_600);
      fake.handler = (req) =>
        req.headers['access-token'] === entry.token ? { json: envelope(28001003) } : { json: envelope(0) };
      await expect(c.decrUserRemainTimes(decr)).resolves.toMatchObject({ errorCode: 0 });
      expect(fake.tokenHits()).toBe(3);
    } finally {
      await c.close();
    }
  });

  it('a replacement the platform accepted and that died later (another process fetched newer tokens) is replaced again', async () => {
    // tok-1 is refused; its replacement tok-2 works once, then dies as tokens rotate.
    let tok2Uses = 0;
    fake.handler = (req) => {
      const t = req.headers['access-token'];
      if (t === 'tok-1') return { json: envelope(28001008) };
      if (t === 'tok-2' && ++tok2Uses > 1) return { json: envelope(28001008, {}, { logid: 'LOG-ROTATED' }) };
      return { json: envelope(0) };
    };
    await expect(client.decrUserRemainTimes(decr)).resolves.toMatchObject({ errorCode: 0 });
    expect(fake.tokenHits()).toBe(2);
    await expect(client.decrUserRemainTimes(decr)).resolves.toMatchObject({ errorCode: 0 });
    expect(fake.tokenHits()).toBe(3);
    expect(fake.to(DOUYIN_PATHS.decrUserRemainTimes).map((c) => c.headers['access-token'])).toEqual([
      'tok-1',
      'tok-2',
      'tok-2',
      'tok-3',
    ]);
  });

  it('a retry token read from the shared cache that has died too is replaced by a freshly fetched one', async () => {
    const prefix = uniquePrefix('wire-rot');
    const a = makeClient({ redisPrefix: prefix });
    const b = makeClient({ redisPrefix: prefix });
    try {
      const dead = new Set<string>();
      fake.handler = (req) =>
        dead.has(String(req.headers['access-token'])) ? { json: envelope(28001008) } : { json: envelope(0) };
      await a.decrUserRemainTimes(decr);
      await b.decrUserRemainTimes(decr); // b now remembers tok-1 (for up to a second)
      dead.add('tok-1');
      await a.decrUserRemainTimes(decr); // a replaces it with tok-2, which works
      dead.add('tok-2'); // rotated out by newer tokens fetched elsewhere
      const before = fake.to(DOUYIN_PATHS.decrUserRemainTimes).length;
      await expect(b.decrUserRemainTimes(decr)).resolves.toMatchObject({ errorCode: 0 });
      const sent = fake.to(DOUYIN_PATHS.decrUserRemainTimes).slice(before);
      expect(sent.map((c) => c.headers['access-token'])).toEqual(['tok-1', 'tok-2', 'tok-3']);
      expect(fake.tokenHits()).toBe(3);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a call still refused as expired after its refresh fails transient (retry later), not auth', async () => {
    fake.handler = () => ({ json: envelope(28001008, {}, { logid: 'LOG-EXP' }) });
    const err = await client.decrUserRemainTimes(decr).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DouyinError);
    expect(err).toMatchObject({ kind: 'transient', retryable: true, errorCode: 28001008, logid: 'LOG-EXP' });
    expect(fake.to(DOUYIN_PATHS.decrUserRemainTimes)).toHaveLength(2);
    expect(fake.tokenHits()).toBe(2);
    // Refused at once now (no fetch for a minute), still retryable.
    await expect(client.decrUserRemainTimes(decr)).rejects.toMatchObject({ kind: 'transient' });
    expect(fake.tokenHits()).toBe(2);
  });

  it('the alternative expired code 2190008 also refreshes', async () => {
    fake.handler = (req) =>
      req.headers['access-token'] === 'tok-1' ? { json: envelope(2190008) } : { json: envelope(0) };
    await expect(client.getUserServicePurchaseList({ openId: 'u1', serviceId: 's1' })).resolves.toMatchObject(
      {
        errorCode: 0,
      },
    );
    expect(fake.to(DOUYIN_PATHS.getUserServicePurchaseList)).toHaveLength(2);
  });
});
