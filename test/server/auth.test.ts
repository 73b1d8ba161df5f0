// Who may do what: API keys open /v1/events only, operator accounts (session cookie
// or HTTP Basic) open /api/* only. Plus the credential helpers themselves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ApiKeys,
  CredentialsConfigError,
  Operators,
  parseApiKeys,
  parseBasic,
  parseBearer,
  parseCookies,
  parseDashboardUsers,
  SessionSigner,
  safeEqual,
} from '../../src/server/auth.js';
import {
  API_KEY,
  basic,
  event,
  OPERATOR,
  operatorAuth,
  startTestServer,
  type TestServer,
} from './helpers.js';

describe('credential helpers', () => {
  it('safeEqual compares in constant time whatever the lengths', () => {
    expect(safeEqual('secret-key', 'secret-key')).toBe(true);
    expect(safeEqual('secret-key', 'secret-kez')).toBe(false);
    expect(safeEqual('secret-key', 'secret')).toBe(false);
    expect(safeEqual('', 'x')).toBe(false);
    expect(safeEqual('', '')).toBe(true);
    expect(safeEqual('ключ', 'ключ')).toBe(true);
  });

  it('ApiKeys accepts only a Bearer token equal to one of the keys', () => {
    const keys = new ApiKeys(['k1', 'k2-longer']);
    expect(keys.check('Bearer k1')).toBe(true);
    expect(keys.check('bearer k2-longer')).toBe(true);
    expect(keys.check('Bearer k3')).toBe(false);
    expect(keys.check('Bearer k1x')).toBe(false);
    expect(keys.check('k1')).toBe(false);
    expect(keys.check(`Basic ${Buffer.from('k1:k1').toString('base64')}`)).toBe(false);
    expect(keys.check(undefined)).toBe(false);
  });

  it('Operators verifies user and password', () => {
    const ops = new Operators(new Map([['alice', 'pw:with:colons']]));
    expect(ops.verify('alice', 'pw:with:colons')).toBe('alice');
    expect(ops.verify('alice', 'pw')).toBeUndefined();
    expect(ops.verify('bob', 'pw:with:colons')).toBeUndefined();
  });

  it('parses API_KEYS and DASHBOARD_USERS, refusing empty or malformed settings', () => {
    expect(parseApiKeys(' a, b ,,c ')).toEqual(['a', 'b', 'c']);
    expect(() => parseApiKeys(' , ')).toThrow(CredentialsConfigError);
    expect(parseDashboardUsers('alice:pw1, bob:p:w:2')).toEqual(
      new Map([
        ['alice', 'pw1'],
        ['bob', 'p:w:2'],
      ]),
    );
    expect(() => parseDashboardUsers('alice')).toThrow(/user:password/);
    expect(() => parseDashboardUsers(':pw')).toThrow(/user:password/);
    expect(() => parseDashboardUsers('alice:')).toThrow(/user:password/);
    expect(() => parseDashboardUsers(undefined)).toThrow(CredentialsConfigError);
  });

  it('parses Authorization and Cookie headers', () => {
    expect(parseBearer('Bearer abc')).toBe('abc');
    expect(parseBearer('Bearer a b')).toBeUndefined();
    expect(parseBasic(basic('u', 'p:q'))).toEqual({ user: 'u', password: 'p:q' });
    expect(parseBasic('Basic !!!')).toBeUndefined();
    expect(parseCookies('a=1; um_session=x.y; a=2; bad')).toEqual({ a: '1', um_session: 'x.y' });
  });

  it('sessions are signed, expire, and cannot be forged or moved between processes', () => {
    const s = new SessionSigner({ ttlSec: 60 });
    const now = Date.now();
    const token = s.issue('alice', now);
    expect(s.verify(token, now)).toBe('alice');
    expect(s.verify(token, now + 61_000)).toBeUndefined();
    const [body, sig] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ u: 'root', exp: now / 1000 + 60 })).toString('base64url');
    expect(s.verify(`${forged}.${sig}`, now)).toBeUndefined();
    expect(s.verify(`${body}.${sig!.slice(0, -2)}xx`, now)).toBeUndefined();
    expect(s.verify('garbage', now)).toBeUndefined();
    expect(new SessionSigner().verify(token, now)).toBeUndefined();
  });
});

describe('auth matrix over HTTP', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ label: 'auth' });
  });
  afterAll(async () => s?.close());

  const post = (headers: Record<string, string>) =>
    fetch(`${s.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(event()),
    });

  it('POST /v1/events: 401 without a key, with a wrong key, with operator credentials', async () => {
    const attempts: Record<string, Record<string, string>> = {
      none: {},
      wrong: { authorization: 'Bearer not-a-key' },
      prefixOfKey: { authorization: `Bearer ${API_KEY.slice(0, -1)}` },
      basicOperator: { authorization: operatorAuth() },
      bearerOperator: { authorization: `Bearer ${OPERATOR.user}:${OPERATOR.password}` },
      basicWithKey: { authorization: basic('x', API_KEY) },
    };
    for (const [name, headers] of Object.entries(attempts)) {
      const res = await post(headers);
      expect({ name, status: res.status }).toEqual({ name, status: 401 });
      expect(await res.json()).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
    }
    const ok = await post({ authorization: `Bearer ${API_KEY}` });
    expect(ok.status).toBe(202);
  });

  it('a signed-in operator cookie does not open /v1/events', async () => {
    const signin = await fetch(`${s.url}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(OPERATOR),
    });
    const cookie = signin.headers.get('set-cookie')!.split(';')[0]!;
    expect((await post({ cookie })).status).toBe(401);
  });

  it('/api/*: 401 with an API key, without credentials, with a wrong password', async () => {
    for (const authorization of [
      `Bearer ${API_KEY}`,
      basic(OPERATOR.user, API_KEY),
      basic(API_KEY, API_KEY),
      basic(OPERATOR.user, 'wrong'),
      basic('nobody', OPERATOR.password),
      '',
    ]) {
      const res = await fetch(`${s.url}/api/status`, { headers: authorization ? { authorization } : {} });
      expect({ authorization, status: res.status }).toEqual({ authorization, status: 401 });
      expect((await res.json()).error.code).toBe('unauthorized');
    }
    const ok = await fetch(`${s.url}/api/status`, { headers: { authorization: operatorAuth() } });
    expect(ok.status).toBe(200);
  });

  it('sign-in sets an HttpOnly SameSite=Strict session cookie that opens /api/* until sign-out', async () => {
    const wrong = await fetch(`${s.url}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: OPERATOR.user, password: 'nope' }),
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();

    const invalid = await fetch(`${s.url}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: OPERATOR.user }),
    });
    expect(invalid.status).toBe(400);
    expect((await invalid.json()).error.message).toMatch(/password/);

    const res = await fetch(`${s.url}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(OPERATOR),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ user: OPERATOR.user });
    const setCookie = res.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^um_session=[^;]+\.[^;]+;/);
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; SameSite=Strict/);
    const cookie = setCookie.split(';')[0]!;

    const who = await fetch(`${s.url}/api/session`, { headers: { cookie } });
    expect(await who.json()).toEqual({ user: OPERATOR.user });
    expect((await fetch(`${s.url}/api/status`, { headers: { cookie } })).status).toBe(200);

    const tampered = `${cookie.slice(0, -3)}abc`;
    expect((await fetch(`${s.url}/api/status`, { headers: { cookie: tampered } })).status).toBe(401);

    const out = await fetch(`${s.url}/api/session`, { method: 'DELETE', headers: { cookie } });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^um_session=; .*Max-Age=0/);
  });

  it('health, metrics and the page need no credentials', async () => {
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${s.url}/metrics`)).status).toBe(200);
  });
});
