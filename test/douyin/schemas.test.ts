// Pure units: request schemas (every invalid form), envelope and purchase-list
// parsing, classification of answers incl. configured overrides, parseErrorKinds,
// and the classification of transport errors.
import { describe, expect, it } from 'vitest';
import {
  classifyCode,
  DouyinError,
  decrUserRemainTimesRequest,
  deletePurchaseInfoRequest,
  insertPurchaseInfoRequest,
  interpretAnswer,
  nowToMs,
  parseCached,
  parseEnvelope,
  parseErrorKinds,
  problemsOf,
  purchaseInfoSchema,
  purchaseListDataSchema,
  purchaseListRequest,
  tokenResponseSchema,
  transportError,
} from '../../src/douyin/index.js';

const decr = { openId: 'u1', serviceId: 's1', serviceModeId: 'm1', count: 3, outTradeNo: 'otn-1' };
const insert = {
  openId: 'u1',
  serviceId: 's1',
  serviceModeId: 'm1',
  outTradeNo: 'p_1.a-b',
  periodType: 1,
  purchaseTime: 1_700_000_000_000,
};

function rejects(
  schema: { safeParse(v: never): { success: boolean; error?: unknown } },
  input: unknown,
): string {
  const r = schema.safeParse(input as never);
  expect(r.success, `expected ${JSON.stringify(input)} to be rejected`).toBe(false);
  return problemsOf(r.error as never).join('; ');
}

describe('request schemas', () => {
  it('decr: camelCase in, exact snake_case wire body out, is_test_env defaults to false', () => {
    expect(decrUserRemainTimesRequest.parse(decr)).toEqual({
      count: 3,
      is_test_env: false,
      open_id: 'u1',
      out_trade_no: 'otn-1',
      service_id: 's1',
      service_mode_id: 'm1',
    });
    expect(decrUserRemainTimesRequest.parse({ ...decr, isTestEnv: true, extra: 'dropped' } as never)).toEqual(
      expect.objectContaining({ is_test_env: true }),
    );
    expect(Object.keys(decrUserRemainTimesRequest.parse({ ...decr, extra: 1 } as never)).sort()).toEqual([
      'count',
      'is_test_env',
      'open_id',
      'out_trade_no',
      'service_id',
      'service_mode_id',
    ]);
    expect(decrUserRemainTimesRequest.parse({ ...decr, count: 2_147_483_647 }).count).toBe(2_147_483_647);
  });

  it('decr: count must be an int32 >= 1', () => {
    for (const count of [0, -1, 1.5, 2_147_483_648, Number.NaN, Number.POSITIVE_INFINITY, '3', null]) {
      expect(rejects(decrUserRemainTimesRequest, { ...decr, count })).toMatch(/count/);
    }
  });

  it('ids: non-empty, at most 128 chars, no whitespace, strings only', () => {
    for (const field of ['openId', 'serviceId', 'serviceModeId'] as const) {
      for (const bad of ['', 'a b', 'tab\there', ' lead', 'x'.repeat(129), 42, undefined]) {
        expect(rejects(decrUserRemainTimesRequest, { ...decr, [field]: bad })).toMatch(
          /open_id|service_id|service_mode_id/,
        );
      }
      expect(decrUserRemainTimesRequest.safeParse({ ...decr, [field]: 'x'.repeat(128) }).success).toBe(true);
    }
  });

  it('out_trade_no: 1..64 chars of [A-Za-z0-9_.-]', () => {
    for (const bad of ['', 'x'.repeat(65), 'has space', 'slash/no', 'ünicode', 'semi;colon', 'plus+']) {
      expect(rejects(decrUserRemainTimesRequest, { ...decr, outTradeNo: bad })).toMatch(/out_trade_no/);
    }
    expect(
      decrUserRemainTimesRequest.safeParse({ ...decr, outTradeNo: 'A-z_0.9'.padEnd(64, 'x') }).success,
    ).toBe(true);
  });

  it('is_test_env must be a boolean', () => {
    expect(rejects(decrUserRemainTimesRequest, { ...decr, isTestEnv: 'true' })).toMatch(/is_test_env/);
  });

  it('insert: wire body with optional duration/usage_times only when given', () => {
    expect(insertPurchaseInfoRequest.parse(insert)).toEqual({
      open_id: 'u1',
      out_trade_no: 'p_1.a-b',
      period_type: 1,
      purchase_time: 1_700_000_000_000,
      service_id: 's1',
      service_mode_id: 'm1',
    });
    expect(insertPurchaseInfoRequest.parse({ ...insert, duration: 30, usageTimes: 0 })).toEqual(
      expect.objectContaining({ duration: 30, usage_times: 0 }),
    );
  });

  it('insert: purchase_time in ms (seconds and microseconds rejected), period_type/duration/usage_times int32 >= 0', () => {
    expect(rejects(insertPurchaseInfoRequest, { ...insert, purchaseTime: 1_700_000_000 })).toMatch(
      /milliseconds/,
    );
    expect(rejects(insertPurchaseInfoRequest, { ...insert, purchaseTime: 1.7e12 + 0.5 })).toMatch(
      /purchase_time/,
    );
    expect(rejects(insertPurchaseInfoRequest, { ...insert, purchaseTime: 1_700_000_000_000_000 })).toMatch(
      /microseconds/,
    );
    expect(rejects(insertPurchaseInfoRequest, { ...insert, periodType: 2_147_483_648 })).toMatch(/int32/);
    expect(rejects(insertPurchaseInfoRequest, { ...insert, usageTimes: 2_147_483_648 })).toMatch(
      /usage_times/,
    );
    expect(rejects(insertPurchaseInfoRequest, { ...insert, periodType: -1 })).toMatch(/period_type/);
    expect(rejects(insertPurchaseInfoRequest, { ...insert, periodType: 1.5 })).toMatch(/period_type/);
    expect(rejects(insertPurchaseInfoRequest, { ...insert, duration: -1 })).toMatch(/duration/);
    expect(rejects(insertPurchaseInfoRequest, { ...insert, duration: 2.5 })).toMatch(/duration/);
    expect(rejects(insertPurchaseInfoRequest, { ...insert, usageTimes: -3 })).toMatch(/usage_times/);
    expect(rejects(insertPurchaseInfoRequest, { ...insert, usageTimes: '3' })).toMatch(/usage_times/);
    const { periodType: _p, ...noPeriod } = insert;
    expect(rejects(insertPurchaseInfoRequest, noPeriod)).toMatch(/period_type/);
  });

  it('delete and purchase list', () => {
    const del = { openId: 'u1', serviceId: 's1', serviceModeId: 'm1', outTradeNo: 'p1' };
    expect(deletePurchaseInfoRequest.parse(del)).toEqual({
      open_id: 'u1',
      out_trade_no: 'p1',
      service_id: 's1',
      service_mode_id: 'm1',
    });
    expect(rejects(deletePurchaseInfoRequest, { ...del, outTradeNo: 'x'.repeat(65) })).toMatch(
      /out_trade_no/,
    );
    expect(rejects(purchaseListRequest, { openId: 'u 1', serviceId: 's1' })).toMatch(/open_id/);
  });

  it('purchase list: open_id, service_id and is_test_env (default false) as the official SDK spells them', () => {
    expect(purchaseListRequest.parse({ openId: 'u1', serviceId: 's1' })).toStrictEqual({
      open_id: 'u1',
      service_id: 's1',
      is_test_env: 'false',
    });
    expect(purchaseListRequest.parse({ openId: 'u1', serviceId: 's1', isTestEnv: true })).toStrictEqual({
      open_id: 'u1',
      service_id: 's1',
      is_test_env: 'true',
    });
    expect(rejects(purchaseListRequest, { openId: 'u1', serviceId: 's1', isTestEnv: 'true' })).toMatch(
      /is_test_env/,
    );
  });
});

describe('envelope parsing', () => {
  it('tolerates unknown fields and reads logid, codes and now (seconds or ms)', () => {
    const s = parseEnvelope({
      data: { error_code: 0, description: '', surprise: [1] },
      extra: { error_code: 0, logid: 'L1', now: 1683277168, sub_error_code: 0, new_field: { a: 1 } },
      top_level_new: true,
    });
    expect(s).toMatchObject({ errorCode: 0, subErrorCode: 0, logid: 'L1', nowMs: 1683277168000 });
    expect(parseEnvelope({ extra: { now: 1648731843045 } })?.nowMs).toBe(1648731843045);
    expect(nowToMs(1683277168)).toBe(1683277168000);
    expect(nowToMs(1648731843045)).toBe(1648731843045);
    expect(nowToMs(undefined)).toBeUndefined();
  });

  it('error code: data.error_code first, extra.error_code as fallback; numeric strings accepted', () => {
    expect(parseEnvelope({ data: { error_code: 2100005 }, extra: { error_code: 1 } })?.errorCode).toBe(
      2100005,
    );
    expect(parseEnvelope({ data: {}, extra: { error_code: 2118110, sub_error_code: 7 } })).toMatchObject({
      errorCode: 2118110,
      subErrorCode: 7,
    });
    expect(parseEnvelope({ data: { error_code: '2100004' } })?.errorCode).toBe(2100004);
  });

  it('malformed parts read as absent; a non-envelope is undefined', () => {
    expect(parseEnvelope({ data: 'nope', extra: { logid: 'L2', now: 'yesterday' } })).toMatchObject({
      logid: 'L2',
      nowMs: undefined,
      data: undefined,
    });
    expect(parseEnvelope(undefined)).toBeUndefined();
    expect(parseEnvelope('<html>')).toBeUndefined();
    expect(parseEnvelope({ message: 'hi' })).toBeUndefined();
  });

  it('purchase list: unknown fields, missing optional fields, missing list', () => {
    const parsed = purchaseListDataSchema.parse({
      error_code: 0,
      purchase_info_list: [
        {
          service_id: 's1',
          service_name: 'Svc',
          service_status: 1,
          specification_type: 1,
          specification_title: 'Basic',
          service_mode_id: 'm1',
          remain_service_times: 42,
          effective_time: 1700000000000,
          expire_time: 1731536000000,
          brand_new: 'x',
        },
        { service_id: 's1', service_mode_id: 'm2' },
      ],
    });
    expect(parsed.purchase_info_list).toEqual([
      {
        serviceId: 's1',
        serviceName: 'Svc',
        serviceStatus: 1,
        specificationType: 1,
        specificationTitle: 'Basic',
        serviceModeId: 'm1',
        remainServiceTimes: 42,
        effectiveTime: 1700000000000,
        expireTime: 1731536000000,
      },
      { serviceId: 's1', serviceModeId: 'm2' },
    ]);
    expect(Object.keys(parsed.purchase_info_list[1]!)).toEqual(['serviceId', 'serviceModeId']);
    expect(purchaseListDataSchema.parse({}).purchase_info_list).toEqual([]);
    expect(purchaseListDataSchema.parse({ purchase_info_list: null }).purchase_info_list).toEqual([]);
    expect(purchaseInfoSchema.safeParse({ service_name: 'no ids' }).success).toBe(false);
  });

  it('token answer', () => {
    const t = tokenResponseSchema.parse({
      data: { access_token: 'clt.x', expires_in: 7200, error_code: 0, description: '', more: 1 },
      message: 'success',
    });
    expect(t.data).toMatchObject({ access_token: 'clt.x', expires_in: 7200, error_code: 0 });
  });

  it('cached token entries: malformed or expired are ignored', () => {
    const now = 1_000_000;
    expect(parseCached(JSON.stringify({ token: 't', expiresAt: now + 1 }), now)?.token).toBe('t');
    expect(parseCached(JSON.stringify({ token: 't', expiresAt: now }), now)).toBeUndefined();
    expect(parseCached('{not json', now)).toBeUndefined();
    expect(parseCached(JSON.stringify({ token: 5, expiresAt: now + 1 }), now)).toBeUndefined();
    expect(parseCached(null, now)).toBeUndefined();
  });
});

describe('classification', () => {
  const env = (code: number) => ({
    data: { error_code: code, description: code ? 'bad' : '' },
    extra: { logid: 'LX', sub_error_code: 3 },
  });
  const errorOf = (status: number, body: unknown, kinds = {}) => {
    const r = interpretAnswer({ status, body }, kinds);
    if (r.ok) throw new Error('expected an error');
    return r.error;
  };

  it('success carries logid, status and description', () => {
    const r = interpretAnswer({ status: 200, body: env(0) });
    expect(r).toMatchObject({
      ok: true,
      result: { logid: 'LX', httpStatus: 200, errorCode: 0, description: '' },
    });
  });

  it('default code table', () => {
    const expected: [number, string][] = [
      [2100004, 'transient'],
      [2100005, 'invalid_request'],
      [2118110, 'rate_limited'],
      [28001003, 'auth'],
      [28001008, 'auth'],
      [2190008, 'auth'],
      [28001018, 'forbidden'],
      [2119001, 'insufficient_balance'],
      [2119002, 'conflict'],
      [2119003, 'not_found'],
      // The simulator's code for a test-mode open_id not on the whitelist: permanent.
      [2190099, 'forbidden'],
      [999, 'unknown'],
    ];
    for (const [code, kind] of expected) {
      const e = errorOf(200, env(code));
      expect(e).toBeInstanceOf(DouyinError);
      expect([e.errorCode, e.kind, e.logid, e.subErrorCode, e.httpStatus]).toEqual([
        code,
        kind,
        'LX',
        3,
        200,
      ]);
    }
  });

  it('configured overrides win over defaults', () => {
    const kinds = parseErrorKinds('21001234=insufficient_balance, 2100004=unknown');
    expect(errorOf(200, env(21001234), kinds).kind).toBe('insufficient_balance');
    expect(errorOf(200, env(2100004), kinds).kind).toBe('unknown');
    expect(classifyCode(21005678, { 21005678: 'conflict' })).toBe('conflict');
    expect(errorOf(200, env(21005678)).kind).toBe('unknown');
  });

  it('a 200 without a numeric data.error_code is a protocol error: transient, with the logid if any', () => {
    const bodies: [unknown, string | undefined][] = [
      [{ data: {} }, undefined],
      [{ extra: { logid: 'x' } }, 'x'],
      [{ data: { error_code: 'abc' } }, undefined],
      [{ data: { description: 'ok' }, extra: { error_code: 0, logid: 'L0' } }, 'L0'],
      [{ data: null, extra: { logid: 'Ln' } }, 'Ln'],
      ['ok', undefined],
      [[], undefined],
      [42, undefined],
      [null, undefined],
      [{}, undefined],
    ];
    for (const [body, logid] of bodies) {
      const e = errorOf(200, body);
      expect({ body, kind: e.kind, retryable: e.retryable, logid: e.logid, code: e.errorCode }).toEqual({
        body,
        kind: 'transient',
        retryable: true,
        logid,
        code: undefined,
      });
      expect(e.description).toMatch(/^protocol error: /);
    }
    // A business error given only in extra is still that error, not a protocol error.
    expect(errorOf(200, { data: {}, extra: { error_code: 2119001 } })).toMatchObject({
      kind: 'insufficient_balance',
      errorCode: 2119001,
    });
  });

  it('HTTP status: 5xx transient, 429 rate_limited, unparsable 200 transient, other 4xx unknown', () => {
    expect(errorOf(503, undefined)).toMatchObject({ kind: 'transient', httpStatus: 503 });
    expect(errorOf(502, env(2100005))).toMatchObject({ kind: 'transient', logid: 'LX' });
    expect(errorOf(429, undefined)).toMatchObject({ kind: 'rate_limited', httpStatus: 429 });
    expect(errorOf(200, undefined)).toMatchObject({ kind: 'transient', httpStatus: 200 });
    expect(errorOf(200, 'some html')).toMatchObject({ kind: 'transient' });
    expect(errorOf(404, undefined)).toMatchObject({ kind: 'unknown', httpStatus: 404 });
    expect(errorOf(404, env(2100005))).toMatchObject({ kind: 'invalid_request', errorCode: 2100005 });
  });

  it('parseErrorKinds: pairs, blanks, and malformed entries', () => {
    expect(parseErrorKinds(undefined)).toEqual({});
    expect(parseErrorKinds(' 1=transient ,, 2:conflict ')).toEqual({ 1: 'transient', 2: 'conflict' });
    expect(() => parseErrorKinds('1=nonsense')).toThrow(/DOUYIN_ERROR_KINDS/);
    expect(() => parseErrorKinds('abc=transient')).toThrow(/DOUYIN_ERROR_KINDS/);
  });

  it('transport errors: socket problems are network, timeouts are timeout, connect timeout is network', () => {
    const err = (code: string, message = 'x') => Object.assign(new Error(message), { code });
    expect(transportError(err('ECONNRESET'), false).kind).toBe('network');
    expect(transportError(err('ECONNREFUSED'), false).kind).toBe('network');
    expect(transportError(err('UND_ERR_SOCKET', 'other side closed'), false).kind).toBe('network');
    expect(transportError(err('UND_ERR_CLOSED'), false).kind).toBe('network');
    expect(transportError(err('UND_ERR_CONNECT_TIMEOUT'), false).kind).toBe('network');
    expect(transportError(err('UND_ERR_HEADERS_TIMEOUT'), false).kind).toBe('timeout');
    expect(transportError(err('UND_ERR_BODY_TIMEOUT'), false).kind).toBe('timeout');
    expect(transportError(err('UND_ERR_ABORTED'), true).kind).toBe('timeout');
    expect(transportError(new DOMException('t', 'TimeoutError'), false).kind).toBe('timeout');
  });
});
