// Wrong operator passwords are throttled per client address (shared in Redis), a
// signed-in operator is never locked out, and SESSION_SECRET shares sessions
// between servers.

import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { SignInThrottle } from '../../src/server/signin-throttle.js';
import { type RunningServer, startServer } from '../../src/server/start.js';
import { createTestDatabase, redisUrl, uniquePrefix } from '../support/services.js';
import { basic, OPERATOR, startTestServer, type TestServer } from './helpers.js';

describe('wrong-password throttle', () => {
  let s: TestServer;
  beforeAll(async () => {
    // Behind a trusted proxy (127.0.0.1), so each test request can name its client address.
    s = await startTestServer({
      label: 'signin',
      signIn: { maxFailures: 3, windowSec: 600 },
      trustProxy: ['127.0.0.1'],
    });
  });
  afterAll(async () => s?.close());

  const signIn = (from: string, password: string) =>
    fetch(`${s.url}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': from },
      body: JSON.stringify({ user: OPERATOR.user, password }),
    });
  const status = (from: string, headers: Record<string, string>) =>
    fetch(`${s.url}/api/status`, { headers: { 'x-forwarded-for': from, ...headers } });

  const failures = (ip: string) => s.redis.get(`${s.prefix}:signin-failures:${ip}`);

  it('locks an address out after maxFailures wrong passwords, form and Basic alike, until the window ends', async () => {
    const a = '10.0.0.1';
    const b = '10.0.0.2';
    const ok = await signIn(a, OPERATOR.password);
    expect(ok.status).toBe(200);
    const cookie = ok.headers.get('set-cookie')!.split(';')[0]!;
    expect(await failures(a)).toBe('0'); // a right password does not count

    expect((await signIn(a, 'guess-1')).status).toBe(401);
    expect((await signIn(a, 'guess-2')).status).toBe(401);
    expect((await status(a, { authorization: basic(OPERATOR.user, 'guess-3') })).status).toBe(401);
    expect(await failures(a)).toBe('3');
    const ttl = await s.redis.pttl(`${s.prefix}:signin-failures:${a}`);
    expect(ttl).toBeGreaterThan(590_000); // the window: 600 s from the first failure

    // The right password no longer opens anything from that address...
    const locked = await signIn(a, OPERATOR.password);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(590);
    expect(Number(locked.headers.get('retry-after'))).toBeLessThanOrEqual(600);
    expect(await locked.json()).toMatchObject({ error: { code: 'too_many_attempts' } });
    expect(locked.headers.get('set-cookie')).toBeNull();
    expect((await status(a, { authorization: basic(OPERATOR.user, OPERATOR.password) })).status).toBe(429);

    // ...while another address, and a session signed in before, still work.
    expect((await signIn(b, OPERATOR.password)).status).toBe(200);
    expect((await status(a, { cookie })).status).toBe(200);

    // The window ends (made to end now rather than in 10 minutes): the address may try again.
    await s.redis.pexpire(`${s.prefix}:signin-failures:${a}`, 1);
    await sleep(20);
    expect((await signIn(a, OPERATOR.password)).status).toBe(200);
  });

  it('concurrent guesses cannot slip past the limit', async () => {
    const c = '10.0.0.3';
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => signIn(c, `guess-${i}`)));
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses.filter((x) => x === 401)).toHaveLength(3);
    expect(statuses.filter((x) => x === 429)).toHaveLength(17);
    expect(await failures(c)).toBe('3');
  });

  it('with TRUST_PROXY=1, the address the one proxy in front reports is the one counted', async () => {
    const behind = await startTestServer({
      label: 'signin-hop',
      signIn: { maxFailures: 2, windowSec: 600 },
      trustProxy: 1,
    });
    try {
      await fetch(`${behind.url}/api/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.7, 10.1.0.1' },
        body: JSON.stringify({ user: OPERATOR.user, password: 'wrong' }),
      });
      // One hop trusted: the rightmost entry (what that proxy saw), not the client-written left one.
      expect(await behind.redis.get(`${behind.prefix}:signin-failures:10.1.0.1`)).toBe('1');
      expect(await behind.redis.exists(`${behind.prefix}:signin-failures:198.51.100.7`)).toBe(0);
    } finally {
      await behind.close();
    }
  });

  it('lets attempts through, and says so, while Redis does not answer', async () => {
    const deadRedis = new Redis('redis://127.0.0.1:1', {
      maxRetriesPerRequest: 0,
      lazyConnect: true,
      retryStrategy: () => null,
    });
    deadRedis.on('error', () => {});
    const warnings: string[] = [];
    const logger = createLogger({ level: 'silent' });
    logger.warn = ((_o: unknown, msg: string) => void warnings.push(msg)) as typeof logger.warn;
    const throttle = new SignInThrottle({ redis: deadRedis, prefix: 'x', maxFailures: 1, logger });
    expect(await throttle.attempt('10.0.0.9')).toBe(0);
    expect(await throttle.attempt('10.0.0.9')).toBe(0); // not refused: nothing could be counted
    await throttle.succeeded('10.0.0.9'); // and giving back does not throw
    expect(warnings).toEqual([
      'sign-in throttle unavailable; attempt let through',
      'sign-in throttle unavailable; attempt let through',
    ]);
    deadRedis.disconnect();
  });

  it('without a trusted proxy, X-Forwarded-For does not choose the address that is counted', async () => {
    const direct = await startTestServer({
      label: 'signin-direct',
      signIn: { maxFailures: 2, windowSec: 600 },
    });
    try {
      for (const from of ['10.9.0.1', '10.9.0.2', '10.9.0.3']) {
        await fetch(`${direct.url}/api/session`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-forwarded-for': from },
          body: JSON.stringify({ user: OPERATOR.user, password: 'wrong' }),
        });
      }
      // All three counted against the real peer, 127.0.0.1: the third was already refused.
      expect(await direct.redis.get(`${direct.prefix}:signin-failures:127.0.0.1`)).toBe('2');
      const res = await fetch(`${direct.url}/api/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '10.9.0.4' },
        body: JSON.stringify(OPERATOR),
      });
      expect(res.status).toBe(429);
    } finally {
      await direct.close();
    }
  });
});

describe('SESSION_SECRET', () => {
  const servers: RunningServer[] = [];
  afterAll(async () => {
    for (const srv of servers) await srv.close();
  });

  it('a session from one server opens another with the same secret, not one with its own, nor once its account is gone', async () => {
    const databaseUrl = await createTestDatabase('secret');
    const env = {
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: uniquePrefix('secret'),
      API_KEYS: 'k-0123456789abcdef',
      DASHBOARD_USERS: `${OPERATOR.user}:${OPERATOR.password}`,
      PORT: '0',
      LOG_LEVEL: 'silent',
    };
    const secret = 'a-shared-session-secret-of-32-chars!!';
    const start = async (extra: Record<string, string>) => {
      const config = loadConfig(['database', 'server'], { ...env, ...extra });
      const srv = await startServer({ config, logger: createLogger({ level: 'silent' }) });
      servers.push(srv);
      return srv.url;
    };
    const [one, two, own, withoutOps] = [
      await start({ SESSION_SECRET: secret }),
      await start({ SESSION_SECRET: secret }),
      await start({}),
      // The same secret, but the operator's account was removed since.
      await start({ SESSION_SECRET: secret, DASHBOARD_USERS: 'someone-else:a-password' }),
    ];
    const res = await fetch(`${one}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(OPERATOR),
    });
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    expect((await fetch(`${two}/api/status`, { headers: { cookie } })).status).toBe(200);
    expect((await fetch(`${own}/api/status`, { headers: { cookie } })).status).toBe(401);
    expect((await fetch(`${withoutOps}/api/status`, { headers: { cookie } })).status).toBe(401);
  });
});
