// The shared client_token against a real Redis and a tiny node:http token server
// that counts its hits: reuse, refresh within the margin, one fetch for many
// "processes" (TokenProvider instances with their own Redis connections), a dead
// lock holder, compare-and-delete invalidation, token-endpoint errors.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DouyinError, DouyinMarketClient } from '../../src/douyin/index.js';
import { redisUrl, uniquePrefix } from '../support/services.js';
import { type FakeDouyin, startFakeDouyin, TOKEN_PATH } from './fake-douyin.js';

const CLIENT_KEY = 'ck-test';
const SECRET = 'very-secret-value-123';

let fake: FakeDouyin;
let redis: Redis;
let prefix: string;
const opened: { client: DouyinMarketClient; redis: Redis }[] = [];

/** A client as another process would have it: its own Redis connection and pool. */
function newProcess(extra: { tokenRefreshMarginSec?: number } = {}): DouyinMarketClient {
  const r = new Redis(redisUrl());
  const client = new DouyinMarketClient({
    baseUrl: fake.url,
    clientKey: CLIENT_KEY,
    clientSecret: SECRET,
    redis: r,
    redisPrefix: prefix,
    timeoutMs: 5_000,
    ...extra,
  });
  opened.push({ client, redis: r });
  return client;
}

const cacheKey = () => `${prefix}:douyin:token:${CLIENT_KEY}`;
const lockKey = () => `${prefix}:douyin:token-lock:${CLIENT_KEY}`;

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(20);
  }
}

beforeAll(async () => {
  fake = await startFakeDouyin();
  redis = new Redis(redisUrl());
});

afterAll(async () => {
  await fake.close();
  redis.disconnect();
});

beforeEach(() => {
  prefix = uniquePrefix('tok');
  fake.reset();
});

afterEach(async () => {
  for (const o of opened.splice(0)) {
    await o.client.close();
    o.redis.disconnect();
  }
});

describe('TokenProvider with a real Redis', () => {
  it('fetches once, stores {token, expiresAt} with TTL = expires_in, and other processes reuse it', async () => {
    const a = newProcess();
    const before = Date.now();
    expect(await a.tokens.getToken()).toBe('tok-1');
    expect(await a.tokens.getToken()).toBe('tok-1');
    expect(await newProcess().tokens.getToken()).toBe('tok-1');
    expect(fake.tokenHits()).toBe(1);

    const stored = JSON.parse((await redis.get(cacheKey()))!);
    expect(stored.token).toBe('tok-1');
    expect(stored.expiresAt).toBeGreaterThanOrEqual(before + 7_200_000);
    expect(stored.expiresAt).toBeLessThanOrEqual(Date.now() + 7_200_000);
    const ttl = await redis.ttl(cacheKey());
    expect(ttl).toBeGreaterThan(7_100);
    expect(ttl).toBeLessThanOrEqual(7_200);

    const req = fake.to(TOKEN_PATH)[0]!;
    expect(req.method).toBe('POST');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.body).toEqual({
      client_key: CLIENT_KEY,
      client_secret: SECRET,
      grant_type: 'client_credential',
    });
  });

  it('within the margin but still valid: returns the old token and refreshes in the background', async () => {
    const now = Date.now();
    await redis.set(
      cacheKey(),
      JSON.stringify({ token: 'old', expiresAt: now + 60_000, fetchedAt: now - 7_140_000 }),
      'EX',
      60,
    );
    const p = newProcess({ tokenRefreshMarginSec: 300 });
    expect(await p.tokens.getToken()).toBe('old');
    await waitFor(async () => JSON.parse((await redis.get(cacheKey())) ?? '{}').token === 'tok-1');
    expect(await p.tokens.getToken()).toBe('tok-1');
    expect(await newProcess().tokens.getToken()).toBe('tok-1');
    expect(fake.tokenHits()).toBe(1);
  });

  it('outside the margin: no fetch at all', async () => {
    const now = Date.now();
    await redis.set(
      cacheKey(),
      JSON.stringify({ token: 'fresh', expiresAt: now + 3_600_000, fetchedAt: now }),
    );
    expect(await newProcess({ tokenRefreshMarginSec: 300 }).tokens.getToken()).toBe('fresh');
    await sleep(100);
    expect(fake.tokenHits()).toBe(0);
  });

  it('reuses what it read from Redis for up to a second, and drops a refused token at once', async () => {
    const now = Date.now();
    const entry = (token: string) => JSON.stringify({ token, expiresAt: now + 3_600_000, fetchedAt: now });
    await redis.set(cacheKey(), entry('first'));
    const p = newProcess();
    expect(await p.tokens.getToken()).toBe('first');
    // Another process stored a new token: within the memo's second this one keeps its own...
    await redis.set(cacheKey(), entry('second'));
    expect(await p.tokens.getToken()).toBe('first');
    // ...and reads Redis again after it.
    await sleep(1_100);
    expect(await p.tokens.getToken()).toBe('second');
    // A token the platform refused is forgotten in memory too, not served for the rest of the second.
    await redis.set(cacheKey(), entry('third'));
    await p.tokens.invalidate('second');
    expect(await p.tokens.getToken()).toBe('third');
    expect(fake.tokenHits()).toBe(0);
  });

  it('nearly expired: waits for the new token instead of handing out one about to die', async () => {
    const now = Date.now();
    await redis.set(
      cacheKey(),
      JSON.stringify({ token: 'dying', expiresAt: now + 2_000, fetchedAt: now - 7_198_000 }),
    );
    expect(await newProcess().tokens.getToken()).toBe('tok-1');
    expect(fake.tokenHits()).toBe(1);
  });

  it('many processes with a cold cache, concurrently: exactly one token fetch', async () => {
    fake.tokenHandler = async () => {
      await sleep(300); // long enough for every process to find the lock taken
      return { json: { data: { access_token: 'shared-1', error_code: 0, expires_in: 7200 } } };
    };
    const processes = Array.from({ length: 16 }, () => newProcess());
    const tokens = await Promise.all(processes.flatMap((p) => [p.tokens.getToken(), p.tokens.getToken()]));
    expect(new Set(tokens)).toEqual(new Set(['shared-1']));
    expect(fake.tokenHits()).toBe(1);
    expect(await redis.exists(lockKey())).toBe(0);
  });

  it('a process that lost the lock keeps using the still-valid old token instead of waiting', async () => {
    const now = Date.now();
    await redis.set(
      cacheKey(),
      JSON.stringify({ token: 'old', expiresAt: now + 60_000, fetchedAt: now - 7_140_000 }),
    );
    await redis.set(lockKey(), 'someone-else', 'PX', 1_000);
    expect(await newProcess().tokens.getToken()).toBe('old');
    expect(fake.tokenHits()).toBe(0);
  });

  it('a dead lock holder: the waiter takes the lock when it expires and fetches itself', async () => {
    await redis.set(lockKey(), 'dead-process', 'PX', 400);
    expect(await newProcess().tokens.getToken()).toBe('tok-1');
    expect(fake.tokenHits()).toBe(1);
    expect(await redis.exists(lockKey())).toBe(0);
  });

  it('invalidate deletes the cached token only if it still holds that token', async () => {
    const p = newProcess();
    expect(await p.tokens.getToken()).toBe('tok-1');
    await p.tokens.invalidate('some-other-token');
    expect(JSON.parse((await redis.get(cacheKey()))!).token).toBe('tok-1');
    await p.tokens.invalidate('tok-1');
    expect(await redis.get(cacheKey())).toBeNull();
    expect(await p.tokens.getToken()).toBe('tok-2');
    expect(fake.tokenHits()).toBe(2);
  });

  it('token endpoint errors: 10013/10003 auth, 10002 invalid_request, no secret in the message, lock released', async () => {
    const cases: [number, string][] = [
      [10013, 'auth'],
      [10003, 'auth'],
      [10002, 'invalid_request'],
    ];
    for (const [code, kind] of cases) {
      fake.tokenHandler = () => ({
        json: { data: { error_code: code, description: 'nope' }, extra: { logid: `L${code}` } },
      });
      const err = await newProcess()
        .tokens.getToken()
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DouyinError);
      expect(err).toMatchObject({ kind, errorCode: code, logid: `L${code}` });
      expect(String((err as Error).message)).not.toContain(SECRET);
      expect(await redis.exists(lockKey())).toBe(0);
    }
    expect(await redis.get(cacheKey())).toBeNull();
  });

  it('token endpoint 5xx or a body without a token: transient', async () => {
    fake.tokenHandler = () => ({ status: 502, text: '<html>bad gateway</html>' });
    await expect(newProcess().tokens.getToken()).rejects.toMatchObject({
      kind: 'transient',
      httpStatus: 502,
    });
    fake.tokenHandler = () => ({ json: { data: { error_code: 0 } } });
    await expect(newProcess().tokens.getToken()).rejects.toMatchObject({ kind: 'transient' });
  });

  it('status: what operators see of the token, a failed refresh included, and never the token', async () => {
    const p = newProcess();
    expect(await p.tokenStatus()).toEqual({
      cached: false,
      expiresAt: null,
      fetchedAt: null,
      lastError: null,
    });

    fake.tokenHandler = () => ({ json: { data: { error_code: 10013, description: 'secret wrong' } } });
    await expect(p.tokens.getToken()).rejects.toMatchObject({ kind: 'auth' });
    const failed = await newProcess().tokenStatus(); // another process sees it too (Redis)
    expect(failed).toMatchObject({ cached: false, lastError: { kind: 'auth', errorCode: 10013 } });
    expect(failed.lastError!.description).toMatch(/secret wrong/);

    fake.reset(); // the default token handler again
    const token = await p.tokens.getToken();
    const ok = await p.tokenStatus();
    expect(ok.cached).toBe(true);
    expect(ok.fetchedAt!).toBeGreaterThan(failed.lastError!.at - 1);
    expect(ok.expiresAt! - ok.fetchedAt!).toBe(7_200_000);
    expect(JSON.stringify(ok)).not.toContain(token);
  });
});
