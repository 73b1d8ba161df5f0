// The client_token, shared by every process of a deployment through Redis and
// refreshed before it expires. The platform rate-limits token fetches, so at most
// one fetch is in flight per deployment: a Redis lock (SET NX PX, released by
// compare-and-delete) across processes, one shared promise within a process.
// Processes that lose the lock keep using a still-valid token, or poll Redis for
// the one the lock holder is fetching. A token the platform refuses is replaced;
// a replacement refused before the platform ever accepted it is not (see invalidate).

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { RedisClient } from '../queue/redis-connection.js';
import { DouyinError } from './errors.js';
import type { FetchedToken } from './token-endpoint.js';

export interface TokenProviderOptions {
  redis: RedisClient;
  /** Redis key of the cached token, e.g. `usage-meter:douyin:token:<client_key>`. */
  cacheKey: string;
  /** Redis key of the refresh lock, e.g. `usage-meter:douyin:token-lock:<client_key>`. */
  lockKey: string;
  /** Fetches a new token from the platform. */
  fetchToken: () => Promise<FetchedToken>;
  /** Refresh this long before expiry (at most half the token's life). Default 300 s. */
  refreshMarginSec?: number;
  /** How long the refresh lock lives if its holder dies. Default 10000 ms. */
  lockTtlMs?: number;
  /** How often a process that lost the lock looks for the new token. Default 50 ms. */
  pollMs?: number;
  /** How long a process waits for a token another process is fetching. Default 3 × lockTtlMs. */
  waitTimeoutMs?: number;
  /** A token closer than this to expiry is not handed out; callers wait for the new one. Default 5000 ms. */
  minRemainingMs?: number;
  /** A replacement for a refused token, refused within this long, is not replaced again. Default 60000 ms. */
  refusedGuardMs?: number;
  /**
   * How long this process reuses what it last read from Redis before reading again,
   * so a busy worker does not pay a Redis round trip per call. A token the platform
   * refuses is dropped at once (invalidate). Default 1000 ms; 0 reads every time.
   */
  memoryTtlMs?: number;
  logger?: Logger;
}

/** What operators see of the token (never the token itself). */
export interface TokenStatus {
  /** Whether a valid token is cached for the deployment. */
  cached: boolean;
  /** Epoch ms: when the cached token expires, and when it was fetched. */
  expiresAt: number | null;
  fetchedAt: number | null;
  /** The latest failed fetch, kept a day (shown while no token was fetched after it). */
  lastError: { at: number; kind: string; errorCode: number | null; description: string } | null;
}

/** The JSON stored in Redis (Redis TTL = expires_in). */
export interface CachedToken {
  token: string;
  /** Epoch ms when the platform stops accepting it. */
  expiresAt: number;
  /** Epoch ms when it was requested (caps the refresh margin at half its life). */
  fetchedAt?: number;
  /** Fetched to replace a token the platform refused. */
  afterRefusal?: boolean;
  /** The platform accepted it at least once (recorded for replacements only). */
  accepted?: boolean;
}

// Deletes KEYS[1] only if it still holds ARGV[1]: never releases someone else's lock.
const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

// Deletes the cached token only if it is still the one the platform refused, and
// marks the next fetch as a replacement (KEYS[2]). Returns -1 instead when the
// refused token is itself a replacement fetched less than ARGV[3] ms ago that the
// platform never accepted: it refuses fresh tokens, so fetching yet another one
// would not help. (One it accepted and then refused died: rotated out by a newer
// token another process fetched, say. That one is replaced.)
const INVALIDATE_TOKEN = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, t = pcall(cjson.decode, v)
if ok and type(t) == 'table' and t.token == ARGV[1] and t.afterRefusal == true and t.accepted ~= true
   and tonumber(ARGV[2]) - (tonumber(t.fetchedAt) or 0) < tonumber(ARGV[3]) then
  return -1
end
if (not ok) or type(t) ~= 'table' or t.token == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return 1
end
return 0`;

// Sets accepted on the cached entry if it still holds ARGV[1] and is a replacement
// (the only entries invalidate looks at), keeping its TTL.
// (PTTL + SET PX rather than KEEPTTL: Redis before 6.0 has none.)
const MARK_ACCEPTED = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, t = pcall(cjson.decode, v)
if (not ok) or type(t) ~= 'table' or t.token ~= ARGV[1] or t.afterRefusal ~= true
   or t.accepted == true then return 0 end
t.accepted = true
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('SET', KEYS[1], cjson.encode(t), 'PX', ttl)
else redis.call('SET', KEYS[1], cjson.encode(t)) end
return 1`;

export class TokenProvider {
  private inflight: Promise<string> | undefined;
  private memo: { entry: CachedToken; until: number } | undefined;
  /** The last token this process reported accepted (markAccepted runs once per token). */
  private acceptedToken: string | undefined;
  private closed = false;
  private readonly marginMs: number;
  private readonly lockTtlMs: number;
  private readonly pollMs: number;
  private readonly waitTimeoutMs: number;
  private readonly minRemainingMs: number;

  constructor(private readonly o: TokenProviderOptions) {
    this.marginMs = (o.refreshMarginSec ?? 300) * 1000;
    this.lockTtlMs = o.lockTtlMs ?? 10_000;
    this.pollMs = o.pollMs ?? 50;
    this.waitTimeoutMs = o.waitTimeoutMs ?? 3 * this.lockTtlMs;
    this.minRemainingMs = o.minRemainingMs ?? 5_000;
  }

  /** A token to call with: the cached one, or (when it is missing or nearly expired) a new one. */
  async getToken(): Promise<string> {
    const now = Date.now();
    let cached = this.memo && now < this.memo.until ? this.memo.entry : undefined;
    if (!cached) {
      cached = await this.read();
      const ttl = this.o.memoryTtlMs ?? 1_000;
      this.memo = cached && ttl > 0 ? { entry: cached, until: now + ttl } : undefined;
    }
    if (cached && now < this.refreshAt(cached)) return cached.token;
    const refresh = this.refreshOnce();
    if (cached && now < cached.expiresAt - this.minRemainingMs) {
      // Within the margin but still valid: use it, the refresh finishes in the background.
      refresh.catch((err: unknown) =>
        this.o.logger?.warn({ err: (err as Error).message }, 'background douyin token refresh failed'),
      );
      return cached.token;
    }
    return refresh;
  }

  /**
   * Forgets the cached token if it is still `token` (the platform called it wrong or
   * expired), so that the next getToken fetches a new one. Returns false, forgetting
   * nothing, when `token` was itself fetched to replace a refused token less than
   * `refusedGuardMs` ago and never accepted (markAccepted): "refresh once, then treat
   * as permanent", for the whole deployment, instead of one token fetch per call
   * while the platform refuses them.
   */
  async invalidate(token: string): Promise<boolean> {
    const guardMs = this.o.refusedGuardMs ?? 60_000;
    const r = Number(
      await this.o.redis.eval(
        INVALIDATE_TOKEN,
        2,
        this.o.cacheKey,
        this.refusedKey(),
        token,
        Date.now(),
        guardMs,
      ),
    );
    if (r === -1) return false;
    if (this.memo?.entry.token === token) this.memo = undefined;
    return true;
  }

  /**
   * The platform accepted `token`: recorded in the shared entry when it replaces a
   * refused token (the one case invalidate() looks at), so that its later refusal
   * is taken for a token that died, and it is replaced again. One Redis call per
   * new token and process, whichever way the process got the token (its own fetch,
   * another process's, its memo).
   */
  async markAccepted(token: string): Promise<void> {
    if (this.acceptedToken === token) return;
    this.acceptedToken = token;
    await this.o.redis.eval(MARK_ACCEPTED, 1, this.o.cacheKey, token).catch((err: unknown) => {
      this.o.logger?.warn({ err: (err as Error).message }, 'could not record the douyin token as accepted');
    });
  }

  private refusedKey(): string {
    return `${this.o.cacheKey}:refused`;
  }

  /** The token's state for the dashboard, shared by every process through Redis. */
  async status(): Promise<TokenStatus> {
    const [raw, rawError] = await this.o.redis.mget(this.o.cacheKey, this.errorKey());
    const c = parseCached(raw);
    let lastError: TokenStatus['lastError'] = null;
    try {
      lastError = rawError ? (JSON.parse(rawError) as TokenStatus['lastError']) : null;
    } catch {}
    return {
      cached: c !== undefined,
      expiresAt: c?.expiresAt ?? null,
      fetchedAt: c?.fetchedAt ?? null,
      lastError,
    };
  }

  private errorKey(): string {
    return `${this.o.cacheKey}:last-error`;
  }

  /** The cached entry, if present and not expired. */
  async read(): Promise<CachedToken | undefined> {
    return parseCached(await this.o.redis.get(this.o.cacheKey));
  }

  /** Stops waiting loops and waits for a refresh in flight (errors ignored). */
  async close(): Promise<void> {
    this.closed = true;
    await this.inflight?.catch(() => {});
  }

  private refreshAt(c: CachedToken): number {
    const life = c.fetchedAt === undefined ? Number.POSITIVE_INFINITY : c.expiresAt - c.fetchedAt;
    return c.expiresAt - Math.min(this.marginMs, life / 2);
  }

  private isFresh(c: CachedToken | undefined): c is CachedToken {
    return c !== undefined && Date.now() < this.refreshAt(c);
  }

  /** Single flight within this process. */
  private refreshOnce(): Promise<string> {
    this.inflight ??= this.refresh()
      .then((token) => {
        // A token another process fetched: forget the old one this process remembers.
        if (this.memo?.entry.token !== token) this.memo = undefined;
        return token;
      })
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }

  private async refresh(): Promise<string> {
    const giveUpAt = Date.now() + this.waitTimeoutMs;
    for (;;) {
      const owner = randomUUID();
      const locked = await this.o.redis.set(this.o.lockKey, owner, 'PX', this.lockTtlMs, 'NX');
      if (locked === 'OK') return this.fetchUnderLock(owner);
      // Another process is fetching: poll until its token appears, or its lock is gone
      // (it failed or died) and we try to take the lock ourselves.
      for (;;) {
        if (this.closed)
          throw new DouyinError({ kind: 'network', description: 'the token provider is closed' });
        if (Date.now() > giveUpAt) {
          throw new DouyinError({ kind: 'timeout', description: 'timed out waiting for the access token' });
        }
        await sleep(this.pollMs);
        const [raw, lock] = await this.o.redis.mget(this.o.cacheKey, this.o.lockKey);
        const c = parseCached(raw);
        if (this.isFresh(c)) return c.token;
        if (lock === null) break;
      }
    }
  }

  private async fetchUnderLock(owner: string): Promise<string> {
    try {
      // Another process may have stored a new token between our read and our lock.
      const c = await this.read();
      if (this.isFresh(c)) return c.token;
      const fetchedAt = Date.now();
      const f = await this.o.fetchToken().catch(async (err: unknown) => {
        await this.recordError(err);
        throw err;
      });
      const value: CachedToken = { token: f.token, expiresAt: fetchedAt + f.expiresInSec * 1000, fetchedAt };
      // This process uses the new token at once, even before Redis confirms it.
      this.memo = { entry: value, until: Date.now() + (this.o.memoryTtlMs ?? 1_000) };
      // Replacing a refused token? Then a refusal of this one will not be replaced again soon.
      // (GET + DEL in MULTI rather than GETDEL: Redis before 6.2 has none.)
      const [[, replacing]] = (await this.o.redis
        .multi()
        .get(this.refusedKey())
        .del(this.refusedKey())
        .exec()) as [[null, string | null], [null, number]];
      if (replacing !== null) value.afterRefusal = true;
      await this.o.redis.set(this.o.cacheKey, JSON.stringify(value), 'EX', f.expiresInSec);
      this.o.logger?.info({ expiresInSec: f.expiresInSec }, 'fetched a new douyin access token');
      return f.token;
    } finally {
      await this.o.redis.eval(RELEASE_LOCK, 1, this.o.lockKey, owner).catch(() => {});
    }
  }

  private async recordError(err: unknown): Promise<void> {
    const e = err instanceof DouyinError ? err : undefined;
    const value = {
      at: Date.now(),
      kind: e?.kind ?? 'unknown',
      errorCode: e?.errorCode ?? null,
      description: (err as Error)?.message ?? String(err),
    };
    await this.o.redis.set(this.errorKey(), JSON.stringify(value), 'EX', 86_400).catch(() => {});
  }
}

/** A cached entry from its Redis value; undefined when absent, malformed or expired. */
export function parseCached(raw: string | null | undefined, now = Date.now()): CachedToken | undefined {
  if (!raw) return undefined;
  try {
    const c = JSON.parse(raw) as Partial<CachedToken>;
    if (typeof c.token !== 'string' || c.token === '' || typeof c.expiresAt !== 'number') return undefined;
    if (c.expiresAt <= now) return undefined;
    return {
      token: c.token,
      expiresAt: c.expiresAt,
      fetchedAt: typeof c.fetchedAt === 'number' ? c.fetchedAt : undefined,
      ...(c.afterRefusal === true ? { afterRefusal: true } : {}),
      ...(c.accepted === true ? { accepted: true } : {}),
    };
  } catch {
    return undefined;
  }
}
