// The HTTP server: ingestion (/v1/events, API keys), Douyin's webhook
// (/webhooks/douyin, signed), the operators' dashboard and its JSON API (/ and
// /api/*, operator accounts), health and metrics. Built here
// from its dependencies so tests can start it on port 0; workers/server.ts and the
// demo start it from the configuration (start.ts).
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { Admission, type AdmissionOptions } from '../balances/admission.js';
import { EventAcceptor } from '../events/accept-events.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { createNotifyQueue } from '../notify/queue.js';
import { WebhookProcessor } from '../orders/process-webhook-messages.js';
import { createQueues } from '../queue/queues.js';
import type { RedisClient } from '../queue/redis-connection.js';
import type { WaitReplicas } from '../queue/replication.js';
import { registerActionRoutes } from './api-actions.js';
import { registerBalanceRoutes } from './api-balance.js';
import { registerChargingRoutes } from './api-charging.js';
import { registerDriftRoutes } from './api-drift.js';
import { EVENTS_BODY_LIMIT, registerEventRoutes } from './api-events.js';
import { registerOrderRoutes } from './api-orders.js';
import { registerReadRoutes } from './api-read.js';
import { registerRejectedRoutes } from './api-rejected.js';
import { registerSearchRoutes } from './api-search.js';
import { registerServiceUsageRoutes } from './api-service-usage.js';
import { registerUsageRoutes } from './api-usage.js';
import { registerUserRoutes } from './api-users.js';
import { registerWebhookEndpointRoutes } from './api-webhook-endpoints.js';
import { ApiKeys, Operators, type SessionOptions, SessionSigner } from './auth.js';
import type { OperatorDouyinApi } from './douyin-api.js';
import { errorBody, HttpError } from './errors.js';
import { registerHealthRoutes } from './health.js';
import { registerOpenApiRoute } from './openapi.js';
import { refuseCrossOrigin } from './origin.js';
import { registerSessionRoutes, requireOperator } from './session.js';
import { SignInThrottle, type SignInThrottleOptions } from './signin-throttle.js';
import { registerWebRoutes } from './web.js';
import { registerDouyinWebhook } from './webhook-douyin.js';

export interface ServerDeps {
  db: PrismaClient;
  /** Shared by the queues, the acceptor and the checks; closed by the caller. */
  redis: RedisClient;
  /** The meter's key prefix (redisKeyPrefix: REDIS_PREFIX, in a hash tag on a cluster). */
  prefix: string;
  /**
   * REDIS_WAIT_REPLICAS / REDIS_WAIT_TIMEOUT_MS: POST /v1/events answers 202 only
   * once this many replicas have the events, else 503 not_replicated.
   */
  waitReplicas?: WaitReplicas;
  /**
   * The connection events are written and WAITed on (WAIT holds its connection while
   * it waits: with waitReplicas give one apart from `redis`). Default `redis`.
   */
  ingestRedis?: RedisClient;
  /** Producers' keys (API_KEYS). */
  apiKeys: string[];
  /** Operators: user -> password (DASHBOARD_USERS). */
  users: ReadonlyMap<string, string>;
  /** Douyin client for user lookups and the purchase tools; without it they answer 503. */
  douyin?: OperatorDouyinApi;
  logger: Logger;
  session?: SessionOptions;
  /** Wrong-password throttle settings (defaults: 10 per address per 900 s). */
  signIn?: Pick<SignInThrottleOptions, 'maxFailures' | 'windowSec'>;
  /**
   * Whose X-Forwarded-For to believe for the client address: a hop count, or the
   * proxies' addresses/CIDRs (TRUST_PROXY). Default false: the peer is the client.
   */
  trustProxy?: false | number | string[];
  /** Built dashboard directory. Default <checkout>/dist-web. */
  webDir?: string;
  /** A replay's new retry deadline and Douyin's idempotency window (METER_RETRY_DEADLINE_SEC, DOUYIN_IDEMPOTENCY_WINDOW_SEC). */
  replay?: { deadlineSec: number; idempotencyWindowSec: number };
  /** Body limit of POST /v1/events, bytes. Default 1 MiB. */
  ingestBodyLimit?: number;
  /** Admission control (METER_ADMISSION=reject): on when given. */
  admission?: Pick<AdmissionOptions, 'unknown' | 'holdSec' | 'budgetMs'>;
  /** METER_BALANCE_MAX_AGE_SEC (default 300). */
  balanceMaxAgeSec?: number;
  /** DOUYIN_CLIENT_SECRET: the key of Douyin's webhook signatures. Without it the webhook answers 503. */
  douyinClientSecret?: string;
  /** NOTIFY_ALLOWED_HOSTS: where webhook endpoints may point (empty: public addresses only). */
  notifyAllowedHosts?: string[];
  /** How long a /readyz result is reused, ms. Default 1000. */
  readyCacheMs?: number;
  /** Time each /readyz check may take, ms. Default 1000. */
  readyTimeoutMs?: number;
  /** The queue/ledger gauges of /metrics are refreshed at most this often, ms. Default 2000. */
  metricsRefreshMs?: number;
}

// Producers send many requests a second and every dashboard polls: per-request lines
// at info would drown the rest, so they are debug (LOG_LEVEL=debug shows them).
class QuietRequestLogs extends LogController {
  override incomingRequest(): void {}
  override requestCompleted(err: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    req.log.debug(
      { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime), err },
      'request',
    );
  }
}

export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const { logger } = deps;
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new QuietRequestLogs(),
    // Operator bodies are small; /v1/events sets its own limit.
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
    // A hop count as a function: this fastify's types take no number.
    trustProxy:
      typeof deps.trustProxy === 'number'
        ? (_address: string, hop: number) => hop < (deps.trustProxy as number)
        : (deps.trustProxy ?? false),
  });

  app.setErrorHandler((err: FastifyError | HttpError, req, reply) => {
    if (err instanceof HttpError)
      return reply
        .code(err.statusCode)
        .headers(err.headers ?? {})
        .send(errorBody(err.code, err.message, err.details));
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) {
      req.log.error({ err, url: req.url, method: req.method }, 'request failed');
      return reply.code(status).send(errorBody('internal', 'internal error; see the server log'));
    }
    // Fastify's own client errors: body too large, malformed JSON, wrong content type...
    const code =
      status === 413
        ? 'payload_too_large'
        : status === 415
          ? 'unsupported_media_type'
          : err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError
            ? 'malformed_json'
            : 'invalid_request';
    return reply.code(status).send(errorBody(code, err.message));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send(errorBody('not_found', `no route ${req.method} ${req.url.split('?')[0]}`)),
  );
  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
  });
  // First: it records the routes registered after it (each /v1 and /api one must be documented).
  registerOpenApiRoute(app);

  const queues = createQueues(deps.redis, deps.prefix);
  // Without a listener BullMQ prints every Redis connection error to stderr; the
  // Redis client's own listener (start.ts) already logs them once.
  for (const q of [queues.events, queues.charge]) q.on('error', () => {});
  // A hung PostgreSQL must not hold producers up: they need only Redis (see api-events.ts).
  // With admission control on, both acceptors ask it (when the ledger cannot answer,
  // the unknown-balance policy decides).
  const admission = deps.admission
    ? new Admission(deps.db, {
        ...deps.admission,
        maxAgeSec: deps.balanceMaxAgeSec ?? 300,
        douyin: deps.douyin,
      })
    : undefined;
  const ingestRedis = deps.ingestRedis ?? deps.redis;
  const acceptor = new EventAcceptor({
    redis: ingestRedis,
    prefix: deps.prefix,
    db: deps.db,
    lookupTimeoutMs: 1_000,
    admission,
    waitReplicas: deps.waitReplicas,
  });
  const fallbackAcceptor = new EventAcceptor({
    redis: ingestRedis,
    prefix: deps.prefix,
    admission,
    waitReplicas: deps.waitReplicas,
  });
  // Redeliveries from the dashboard are enqueued here; the workers send them.
  const notifyQueue = createNotifyQueue(deps.redis, deps.prefix);
  notifyQueue.on('error', () => {});
  app.addHook('onClose', async () => {
    await Promise.all([queues.close(), notifyQueue.close(), acceptor.close(), fallbackAcceptor.close()]);
  });

  registerHealthRoutes(app, {
    db: deps.db,
    redis: deps.redis,
    prefix: deps.prefix,
    queues,
    logger,
    readyTimeoutMs: deps.readyTimeoutMs,
    readyCacheMs: deps.readyCacheMs,
    metricsRefreshMs: deps.metricsRefreshMs,
  });
  const apiKeys = new ApiKeys(deps.apiKeys);
  registerBalanceRoutes(app, {
    db: deps.db,
    apiKeys,
    douyin: deps.douyin,
    maxAgeSec: deps.balanceMaxAgeSec ?? 300,
  });
  registerUsageRoutes(app, { db: deps.db, apiKeys });
  registerEventRoutes(app, {
    apiKeys,
    acceptor,
    fallbackAcceptor,
    logger,
    bodyLimit: deps.ingestBodyLimit ?? EVENTS_BODY_LIMIT,
  });

  const sessionDeps = {
    operators: new Operators(deps.users),
    sessions: new SessionSigner(deps.session),
    throttle: new SignInThrottle({ redis: deps.redis, prefix: deps.prefix, logger, ...deps.signIn }),
    logger,
  };
  const webhookProcessor = new WebhookProcessor(deps.db, logger);
  webhookProcessor.start();
  app.addHook('onClose', async () => webhookProcessor.stop());
  registerDouyinWebhook(app, {
    db: deps.db,
    clientSecret: deps.douyinClientSecret,
    logger,
    onStored: () => webhookProcessor.kick(),
  });

  registerSessionRoutes(app, sessionDeps);
  await app.register(
    async (api) => {
      // First: a refused cross-origin request costs no credentials check (nor a throttle count).
      api.addHook('onRequest', refuseCrossOrigin);
      api.addHook('onRequest', requireOperator(sessionDeps));
      registerReadRoutes(api, deps);
      registerUserRoutes(api, deps);
      registerActionRoutes(api, deps);
      registerRejectedRoutes(api, deps);
      registerOrderRoutes(api, deps.db);
      registerDriftRoutes(api, deps.db);
      registerSearchRoutes(api, deps.db);
      registerServiceUsageRoutes(api, deps);
      registerChargingRoutes(api, {
        db: deps.db,
        redis: deps.redis,
        prefix: deps.prefix,
        charge: queues.charge,
        logger,
        waitReplicas: deps.waitReplicas,
        idempotencyWindowSec: deps.replay?.idempotencyWindowSec,
      });
      registerWebhookEndpointRoutes(api, {
        db: deps.db,
        notifyQueue,
        allowedHosts: deps.notifyAllowedHosts ?? [],
        logger,
      });
    },
    { prefix: '/api' },
  );
  registerWebRoutes(app, deps.webDir);
  await app.ready();
  return app;
}
