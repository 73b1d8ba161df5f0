// The Douyin service-market client: the four methods over one keep-alive undici
// pool, input validated before anything is sent, answers read from the envelope,
// every failure a typed DouyinError with its logid. A wrong or expired token is
// refreshed and the call retried (at most twice: see call()); nothing else is
// retried here (retry policy belongs to the caller, who knows whether the call is
// idempotent).

import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Config } from '../config.js';
import type { RedisClient } from '../queue/redis-connection.js';
import { redisKeyPrefix } from '../queue/redis-prefix.js';
import { callDeadline } from './deadline.js';
import { type EnvelopeResult, type Interpreted, interpretAnswer } from './envelope.js';
import {
  DouyinError,
  DouyinRequestError,
  type ErrorKind,
  parseErrorKinds,
  TOKEN_EXPIRED_CODES,
  TOKEN_REFRESH_CODES,
} from './errors.js';
import { RateLimiter, type Slot } from './rate-limiter.js';
import {
  type DecrUserRemainTimesInput,
  type DeletePurchaseInfoInput,
  decrUserRemainTimesRequest,
  deletePurchaseInfoRequest,
  type InsertPurchaseInfoInput,
  insertPurchaseInfoRequest,
  type PurchaseInfo,
  type PurchaseListInput,
  problemsOf,
  purchaseListDataSchema,
  purchaseListRequest,
} from './schemas.js';
import { TokenProvider, type TokenStatus } from './token.js';
import { CLIENT_TOKEN_PATH, type FetchedToken, fetchClientToken } from './token-endpoint.js';
import { HttpTransport } from './transport.js';

export const DOUYIN_PATHS = {
  clientToken: CLIENT_TOKEN_PATH,
  decrUserRemainTimes: '/market/service/user/remaintimes/decr/',
  insertPurchaseInfo: '/market/service/user/insert/purchase/info/',
  deletePurchaseInfo: '/market/service/user/delete/purchase/info/',
  getUserServicePurchaseList: '/market/service/user/purchase/list/',
} as const;

export type DouyinMethod = keyof typeof DOUYIN_PATHS;

/** What `onCall` receives after every call (one per method call, one per token fetch). */
export interface DouyinCallEvent {
  method: DouyinMethod;
  durationMs: number;
  outcome: 'success' | 'error';
  kind?: ErrorKind;
  errorCode?: number;
}

export interface DouyinClientOptions {
  /** e.g. 'https://open.douyin.com/'; may carry a path prefix; trailing slash optional. */
  baseUrl: string;
  clientKey: string;
  clientSecret: string;
  /** The shared token cache. */
  redis: RedisClient;
  /** Default 'usage-meter'. Keys: `<prefix>:douyin:token:<clientKey>` and `<prefix>:douyin:token-lock:<clientKey>`. */
  redisPrefix?: string;
  /** Deadline of a whole method call (token, request, body, the one token retry), ms. Default 10000. */
  timeoutMs?: number;
  /** Default 5000. */
  connectTimeoutMs?: number;
  /** Refresh the shared token this long before it expires. Default 300. */
  tokenRefreshMarginSec?: number;
  /** Extra code-to-kind mapping, e.g. parseErrorKinds(DOUYIN_ERROR_KINDS); wins over the defaults. */
  errorKinds?: Record<number, ErrorKind>;
  logger?: Logger;
  /** Metrics hook, called after every call. */
  onCall?: (e: DouyinCallEvent) => void;
  /** undici pool size. Default 128. */
  connections?: number;
  /**
   * Awaited right before each request of a call that brings no `beforeSend` of its
   * own (see CallOptions). createDouyinClientFromConfig sets it to the
   * deployment-wide rate limiter, so every call counts against DOUYIN_QPS.
   * Default: none.
   */
  beforeSend?: (signal: AbortSignal) => Promise<void>;
  /**
   * Awaited once before a read (GetUserServicePurchaseList), before its deadline
   * starts. createDouyinClientFromConfig sets it to the reads' own limiter, so all
   * of the deployment's reads together take at most DOUYIN_READ_QPS_SHARE of
   * DOUYIN_QPS and never starve charging. Default: none.
   */
  beforeRead?: (signal?: AbortSignal) => Promise<void>;
}

export type DouyinCallResult = EnvelopeResult;

export interface CallOptions {
  signal?: AbortSignal;
  /**
   * Awaited right before each request is sent (after the token is in hand, and again
   * before the one retry after a token refresh). A caller that paces its calls uses
   * it to check, at the last moment, that the call is still on time; it may wait, or
   * throw to send nothing.
   */
  beforeSend?: (signal: AbortSignal) => Promise<void>;
}

type Success = Extract<Interpreted, { ok: true }>;

/**
 * Token refusals one call recovers from: the replacement it gets may come from the
 * shared cache and have died already (another process fetched newer tokens), so one
 * more, then a freshly fetched one.
 */
const MAX_TOKEN_RETRIES = 2;

function refusesToken(out: Interpreted): boolean {
  return !out.ok && out.error.errorCode !== undefined && TOKEN_REFRESH_CODES.has(out.error.errorCode);
}

/**
 * A call still refused as "expired" after its token refreshes: tokens die faster
 * than they are used (another process with the same client key fetching new ones),
 * or the deployment holds off fetching for a minute. Not applied, and not permanent
 * (the contract: refresh and retry), so retryable, unlike a wrong token.
 */
function expiredAgain(e: DouyinError, refused: number): DouyinError {
  return new DouyinError({
    kind: 'transient',
    errorCode: e.errorCode,
    subErrorCode: e.subErrorCode,
    description: `${e.description} (${refused} token(s) refused in this call; retry later)`,
    logid: e.logid,
    httpStatus: e.httpStatus,
  });
}

interface BusinessRequest {
  method: Exclude<DouyinMethod, 'clientToken'>;
  httpMethod: 'GET' | 'POST';
  body?: object;
  query?: Record<string, string>;
}

export class DouyinMarketClient {
  readonly tokens: TokenProvider;
  private readonly transport: HttpTransport;
  private readonly timeoutMs: number;
  private readonly errorKinds: Record<number, ErrorKind>;

  constructor(private readonly o: DouyinClientOptions) {
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.errorKinds = o.errorKinds ?? {};
    this.transport = new HttpTransport({
      baseUrl: o.baseUrl,
      timeoutMs: this.timeoutMs,
      connectTimeoutMs: o.connectTimeoutMs,
      connections: o.connections,
    });
    const prefix = o.redisPrefix ?? 'usage-meter';
    this.tokens = new TokenProvider({
      redis: o.redis,
      cacheKey: `${prefix}:douyin:token:${o.clientKey}`,
      lockKey: `${prefix}:douyin:token-lock:${o.clientKey}`,
      refreshMarginSec: o.tokenRefreshMarginSec,
      // The lock must outlive one fetch, or a second process could start another.
      lockTtlMs: Math.max(10_000, this.timeoutMs + 1_000),
      logger: o.logger,
      fetchToken: () => this.fetchToken(),
    });
  }

  /** Deducts `count` uses; idempotent per out_trade_no (a replay must carry the same parameters). */
  async decrUserRemainTimes(
    input: DecrUserRemainTimesInput,
    opts: CallOptions = {},
  ): Promise<DouyinCallResult> {
    const body = validate(decrUserRemainTimesRequest, input);
    return this.call({ method: 'decrUserRemainTimes', httpMethod: 'POST', body }, opts, (ok) => ok.result);
  }

  async insertPurchaseInfo(
    input: InsertPurchaseInfoInput,
    opts: CallOptions = {},
  ): Promise<DouyinCallResult> {
    const body = validate(insertPurchaseInfoRequest, input);
    return this.call({ method: 'insertPurchaseInfo', httpMethod: 'POST', body }, opts, (ok) => ok.result);
  }

  async deletePurchaseInfo(
    input: DeletePurchaseInfoInput,
    opts: CallOptions = {},
  ): Promise<DouyinCallResult> {
    const body = validate(deletePurchaseInfoRequest, input);
    return this.call({ method: 'deletePurchaseInfo', httpMethod: 'POST', body }, opts, (ok) => ok.result);
  }

  async getUserServicePurchaseList(
    input: PurchaseListInput,
    opts: CallOptions = {},
  ): Promise<DouyinCallResult & { purchaseInfoList: PurchaseInfo[] }> {
    const query = { ...validate(purchaseListRequest, input) };
    if (this.o.beforeRead) {
      try {
        await this.o.beforeRead(opts.signal);
      } catch (err) {
        // Nothing was sent: a failure like any other before the request leaves.
        throw new DouyinError({
          kind: 'transient',
          description: `waiting for a read slot: ${(err as Error).message}`,
        });
      }
    }
    return this.call({ method: 'getUserServicePurchaseList', httpMethod: 'GET', query }, opts, (ok) => {
      const parsed = purchaseListDataSchema.safeParse(ok.data ?? {});
      if (!parsed.success) {
        // A 200 whose list we cannot read: like an unparsable body, most likely a proxy or a glitch.
        throw new DouyinError({
          kind: 'transient',
          description: `protocol error: unexpected purchase_info_list: ${problemsOf(parsed.error)[0] ?? 'malformed'}`,
          logid: ok.result.logid,
          httpStatus: ok.result.httpStatus,
        });
      }
      return { ...ok.result, purchaseInfoList: parsed.data.purchase_info_list };
    });
  }

  /** The shared token's state (never the token): for operators' health views. */
  tokenStatus(): Promise<TokenStatus> {
    return this.tokens.status();
  }

  /** Waits for a token refresh in flight, then closes the pool. */
  async close(): Promise<void> {
    await this.tokens.close();
    await this.transport.close();
  }

  /**
   * One method call under one deadline: token, request, and a retry with another
   * token each time the platform calls the token wrong or expired (at most
   * MAX_TOKEN_RETRIES; a refused request was not applied). `map` reads the success
   * (it may throw a DouyinError for malformed `data`) before onCall reports the outcome.
   */
  private async call<T>(req: BusinessRequest, opts: CallOptions, map: (ok: Success) => T): Promise<T> {
    const t0 = performance.now();
    const deadline = callDeadline(this.timeoutMs, opts.signal);
    const signal = deadline.signal;
    try {
      let token = await untilAborted(this.tokens.getToken(), signal);
      const beforeSend = opts.beforeSend ?? this.o.beforeSend;
      if (beforeSend) await untilAborted(beforeSend(signal), signal);
      let out = await this.send(req, token, signal);
      const refused = new Set<string>();
      while (!out.ok && refusesToken(out) && refused.size < MAX_TOKEN_RETRIES) {
        refused.add(token);
        if (!(await this.tokens.invalidate(token))) {
          // A token fetched to replace a refused one was refused before it was ever
          // accepted: another fetch would not help (and the platform limits fetches).
          this.o.logger?.warn(
            { method: req.method, code: out.error.errorCode },
            'douyin refused a freshly replaced token too; not fetching another for a minute',
          );
          break;
        }
        this.o.logger?.info(
          { method: req.method, code: out.error.errorCode },
          'douyin token refused; refreshing',
        );
        token = await untilAborted(this.tokens.getToken(), signal);
        if (refused.has(token)) break;
        if (beforeSend) await untilAborted(beforeSend(signal), signal);
        out = await this.send(req, token, signal);
      }
      if (!out.ok) {
        const code = out.error.errorCode;
        if (code !== undefined && TOKEN_EXPIRED_CODES.has(code)) throw expiredAgain(out.error, refused.size);
        throw out.error;
      }
      await this.tokens.markAccepted(token);
      const value = map(out);
      this.report(req.method, t0);
      return value;
    } catch (err) {
      const e = this.asDouyinError(err, opts.signal);
      this.report(req.method, t0, e);
      this.o.logger?.debug(
        { method: req.method, kind: e.kind, code: e.errorCode, logid: e.logid, httpStatus: e.httpStatus },
        'douyin call failed',
      );
      throw e;
    } finally {
      deadline.dispose();
    }
  }

  private async send(req: BusinessRequest, token: string, signal: AbortSignal): Promise<Interpreted> {
    const answer = await this.transport.request({
      method: req.httpMethod,
      path: DOUYIN_PATHS[req.method],
      query: req.query,
      body: req.body,
      headers: { 'access-token': token },
      signal,
    });
    return interpretAnswer(answer, this.errorKinds);
  }

  private async fetchToken(): Promise<FetchedToken> {
    const t0 = performance.now();
    try {
      const t = await fetchClientToken({
        transport: this.transport,
        clientKey: this.o.clientKey,
        clientSecret: this.o.clientSecret,
        timeoutMs: this.timeoutMs,
        errorKinds: this.errorKinds,
      });
      this.report('clientToken', t0);
      return t;
    } catch (err) {
      const e = this.asDouyinError(err, undefined);
      this.report('clientToken', t0, e);
      this.o.logger?.warn({ kind: e.kind, code: e.errorCode, logid: e.logid }, 'douyin token fetch failed');
      throw e;
    }
  }

  private asDouyinError(err: unknown, callerSignal: AbortSignal | undefined): DouyinError {
    if (callerSignal?.aborted && (!(err instanceof DouyinError) || err.kind === 'timeout')) {
      // The call may still have been applied: the same kind as a timeout, for the caller's retry.
      return new DouyinError({ kind: 'timeout', description: 'aborted by the caller', cause: err });
    }
    if (err instanceof DouyinError) return err;
    // Redis (token cache) trouble or anything unexpected on the way.
    return new DouyinError({
      kind: 'network',
      description: (err as Error)?.message ?? String(err),
      cause: err,
    });
  }

  private report(method: DouyinMethod, t0: number, e?: DouyinError): void {
    const durationMs = performance.now() - t0;
    if (!e) this.o.onCall?.({ method, durationMs, outcome: 'success' });
    else this.o.onCall?.({ method, durationMs, outcome: 'error', kind: e.kind, errorCode: e.errorCode });
  }
}

function validate<O, I>(schema: z.ZodType<O, I>, input: I): O {
  const r = schema.safeParse(input);
  if (!r.success) throw new DouyinRequestError(problemsOf(r.error));
  return r.data;
}

/** `p`, or a 'timeout' DouyinError as soon as `signal` fires (`p` itself goes on: it may be shared). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(new DouyinError({ kind: 'timeout', description: 'no answer in time' }));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new DouyinError({ kind: 'timeout', description: 'no answer in time' }));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A client from the DOUYIN_* configuration (src/config.ts). Throws if the key or secret is missing. */
export function createDouyinClientFromConfig(
  config: Config,
  redis: RedisClient,
  {
    limiter: givenLimiter,
    onRateLimitSlot,
    ...extra
  }: Partial<DouyinClientOptions> & { limiter?: RateLimiter; onRateLimitSlot?: (slot: Slot) => void } = {},
): DouyinMarketClient {
  if (!config.DOUYIN_CLIENT_KEY || !config.DOUYIN_CLIENT_SECRET) {
    throw new Error('DOUYIN_CLIENT_KEY and DOUYIN_CLIENT_SECRET are required for the Douyin client');
  }
  // Every process of the deployment (workers, server, CLI) paces its calls on the
  // one shared limiter: the platform counts the application's calls, not a process's.
  // A process passes its one limiter; without one, the client makes its own.
  const limiter = givenLimiter ?? douyinRateLimiter(config, redis, onRateLimitSlot);
  const reads = douyinReadLimiter(config, redis);
  return new DouyinMarketClient({
    baseUrl: config.DOUYIN_BASE_URL,
    clientKey: config.DOUYIN_CLIENT_KEY,
    clientSecret: config.DOUYIN_CLIENT_SECRET,
    redis,
    redisPrefix: redisKeyPrefix(config),
    timeoutMs: config.DOUYIN_TIMEOUT_MS,
    connectTimeoutMs: config.DOUYIN_CONNECT_TIMEOUT_MS,
    tokenRefreshMarginSec: config.DOUYIN_TOKEN_REFRESH_MARGIN_SEC,
    errorKinds: parseErrorKinds(config.DOUYIN_ERROR_KINDS),
    beforeSend: async (signal) => {
      await limiter.acquire(signal);
    },
    beforeRead: async (signal) => {
      await reads.acquire(signal);
    },
    ...extra,
  });
}

/**
 * The deployment-wide limiter on Douyin's reads (purchase lists): a read takes a
 * slot here first, then one of the limiter every call takes, so reads together
 * stay within DOUYIN_READ_QPS_SHARE of DOUYIN_QPS.
 */
export function douyinReadLimiter(config: Config, redis: RedisClient): RateLimiter {
  return new RateLimiter({
    redis,
    key: `${redisKeyPrefix(config)}:douyin:ratelimit:reads`,
    qps: Math.max(1, Math.floor(config.DOUYIN_QPS * config.DOUYIN_READ_QPS_SHARE)),
    // Reads have short deadlines (a balance waits 3 s): booking a slot further out
    // than this would waste it when the caller gives up; beyond it they wait unbooked.
    maxReserveMs: 1_000,
  });
}

/** The deployment-wide limiter on Douyin calls, shared in Redis under the meter's key prefix (redisKeyPrefix). */
export function douyinRateLimiter(
  config: Config,
  redis: RedisClient,
  onAcquire?: (slot: Slot) => void,
): RateLimiter {
  return new RateLimiter({
    redis,
    key: `${redisKeyPrefix(config)}:douyin:ratelimit`,
    qps: config.DOUYIN_QPS,
    onAcquire,
  });
}
