// GET /openapi.json: an OpenAPI 3.1 description of the producers' API (/v1/*) and
// the operators' API (/api/*), generated from the zod schemas the routes validate
// with, so it cannot drift from them. Only inputs are described (path, query and
// body); answers are listed by status, errors with the one error shape of errors.ts.
// Public: it holds nothing that is not in the source.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { usageEventSchema } from '../events/schema.js';
import { balanceQuery } from './api-balance.js';
import { pauseBody } from './api-charging.js';
import { driftQuery } from './api-drift.js';
import { MAX_EVENTS_PER_REQUEST } from './api-events.js';
import { query as rejectedEventsQuery } from './api-rejected.js';
import { searchQuery } from './api-search.js';
import { serviceUsageQuery } from './api-service-usage.js';
import { usageQuery } from './api-usage.js';
import {
  createBody as createEndpointBody,
  deliveriesQuery,
  deliveryPath,
  endpointPath,
  rotateBody,
  updateBody as updateEndpointBody,
} from './api-webhook-endpoints.js';
import { SESSION_COOKIE } from './auth.js';
import {
  batchListQuery,
  deletePurchaseBody,
  douyinHealthQuery,
  emptyBody,
  idPath,
  insertPurchaseBody,
  openIdPath,
  ordersQuery,
  purchaseListQuery,
  replayManyBody,
  resolveBody,
  resolveManyBody,
  timeseriesQuery,
  userEventsQuery,
  userQuery,
} from './params.js';
import { signInSchema } from './session.js';
import { projectRoot } from './web.js';

type Method = 'get' | 'post' | 'patch' | 'delete';

/** One route, as its handler checks its input. */
export interface Operation {
  method: Method;
  /** OpenAPI style: /api/batches/{id}. */
  path: string;
  summary: string;
  /** apiKey: `Authorization: Bearer <key>`; operator: the session cookie or HTTP Basic. */
  auth: 'apiKey' | 'operator' | 'none';
  /** Object schemas: each property is one parameter. */
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  /** The success status. Default 200. */
  status?: number;
}

/**
 * POST /v1/events takes one event or an array of them; api-events.ts checks the array's
 * size and the event acceptor validates each event with usageEventSchema (an invalid one
 * is rejected on its own, in the 202's results).
 */
const ingestBody = z.union([usageEventSchema, z.array(usageEventSchema).min(1).max(MAX_EVENTS_PER_REQUEST)]);

export const OPERATIONS: readonly Operation[] = [
  // Producers and app services (API keys).
  {
    method: 'post',
    path: '/v1/events',
    summary: 'Send usage events: one event or an array of 1 to 1,000',
    auth: 'apiKey',
    body: ingestBody,
    status: 202,
  },
  {
    method: 'get',
    path: '/v1/users/{openId}/balance',
    summary: "A user's balance of a service mode",
    auth: 'apiKey',
    params: openIdPath,
    query: balanceQuery,
  },
  {
    method: 'get',
    path: '/v1/usage',
    summary: "A user's uses of a service per hour or day",
    auth: 'apiKey',
    query: usageQuery,
  },

  // Operators' session.
  {
    method: 'post',
    path: '/api/session',
    summary: 'Sign in (sets the session cookie)',
    auth: 'none',
    body: signInSchema,
  },
  { method: 'get', path: '/api/session', summary: 'The signed-in operator', auth: 'operator' },
  {
    method: 'delete',
    path: '/api/session',
    summary: 'Sign out (clears the session cookie)',
    auth: 'none',
    status: 204,
  },

  // Operators' reads.
  {
    method: 'get',
    path: '/api/status',
    summary: "The meter's state: events, batches, queues",
    auth: 'operator',
  },
  {
    method: 'get',
    path: '/api/batches',
    summary: 'Batches, newest first, a page at a time',
    auth: 'operator',
    query: batchListQuery,
  },
  {
    method: 'get',
    path: '/api/batches/{id}',
    summary: 'A batch with its events and call attempts',
    auth: 'operator',
    params: idPath,
  },
  {
    method: 'get',
    path: '/api/timeseries',
    summary: 'Events in, uses deducted and failed calls per minute',
    auth: 'operator',
    query: timeseriesQuery,
  },
  {
    method: 'get',
    path: '/api/douyin-health',
    summary: "DecrUserRemainTimes calls' latency and errors, and the access token's state",
    auth: 'operator',
    query: douyinHealthQuery,
  },
  {
    method: 'get',
    path: '/api/users/{openId}',
    summary: 'Everything about one user, with the remaining times Douyin reports now',
    auth: 'operator',
    params: openIdPath,
    query: userQuery,
  },
  {
    method: 'get',
    path: '/api/users/{openId}/events',
    summary: "A user's events, newest first, a page at a time",
    auth: 'operator',
    params: openIdPath,
    query: userEventsQuery,
  },
  {
    method: 'get',
    path: '/api/rejected-events',
    summary: 'Events the ledger refused, newest first, with their count',
    auth: 'operator',
    query: rejectedEventsQuery,
  },
  {
    method: 'get',
    path: '/api/orders',
    summary: "A user's order events from Douyin's webhook, newest first",
    auth: 'operator',
    query: ordersQuery,
  },
  {
    method: 'get',
    path: '/api/service-usage',
    summary: 'Uses received and deducted per service mode, per bucket of the last hour, day or 30 days',
    auth: 'operator',
    query: serviceUsageQuery,
  },
  {
    method: 'get',
    path: '/api/drift',
    summary: 'Keys whose latest reconciliation found drift',
    auth: 'operator',
    query: driftQuery,
  },
  {
    method: 'get',
    path: '/api/search',
    summary: 'Look up a batch id, out_trade_no, eventId, logid or openId',
    auth: 'operator',
    query: searchQuery,
  },

  // Operators' actions.
  {
    method: 'post',
    path: '/api/batches/{id}/replay',
    summary: 'Replay a dead or insufficient batch (same out_trade_no and count)',
    auth: 'operator',
    params: idPath,
    body: emptyBody,
  },
  {
    method: 'post',
    path: '/api/batches/replay',
    summary: 'Replay several batches',
    auth: 'operator',
    body: replayManyBody,
  },
  {
    method: 'post',
    path: '/api/batches/replay-dead',
    summary: 'Replay every dead batch',
    auth: 'operator',
    body: emptyBody,
  },
  {
    method: 'post',
    path: '/api/batches/{id}/resolve',
    summary: 'Settle a dead or insufficient batch by hand, as charged or uncharged',
    auth: 'operator',
    params: idPath,
    body: resolveBody,
  },
  {
    method: 'post',
    path: '/api/batches/resolve',
    summary: 'Settle several batches by hand',
    auth: 'operator',
    body: resolveManyBody,
  },
  {
    method: 'get',
    path: '/api/purchases',
    summary: 'GetUserServicePurchaseList, as Douyin answers it',
    auth: 'operator',
    query: purchaseListQuery,
  },
  {
    method: 'post',
    path: '/api/purchases/insert',
    summary: 'InsertPurchaseInfo',
    auth: 'operator',
    body: insertPurchaseBody,
  },
  {
    method: 'post',
    path: '/api/purchases/delete',
    summary: 'DeletePurchaseInfo',
    auth: 'operator',
    body: deletePurchaseBody,
  },
  {
    method: 'get',
    path: '/api/charging',
    summary: 'Whether charging is paused deployment-wide',
    auth: 'operator',
  },
  {
    method: 'post',
    path: '/api/charging/pause',
    summary: 'Pause charging deployment-wide',
    auth: 'operator',
    body: pauseBody,
  },
  {
    method: 'post',
    path: '/api/charging/resume',
    summary: 'Resume charging',
    auth: 'operator',
    body: emptyBody,
  },

  // Webhook endpoints (docs/notifications.md).
  {
    method: 'get',
    path: '/api/webhook-endpoints',
    summary: "The meter's webhook endpoints and the event types",
    auth: 'operator',
  },
  {
    method: 'post',
    path: '/api/webhook-endpoints',
    summary: 'Make a webhook endpoint (its secret is shown once, in the answer)',
    auth: 'operator',
    body: createEndpointBody,
    status: 201,
  },
  {
    method: 'get',
    path: '/api/webhook-endpoints/{id}',
    summary: 'A webhook endpoint',
    auth: 'operator',
    params: endpointPath,
  },
  {
    method: 'patch',
    path: '/api/webhook-endpoints/{id}',
    summary: 'Change a webhook endpoint',
    auth: 'operator',
    params: endpointPath,
    body: updateEndpointBody,
  },
  {
    method: 'delete',
    path: '/api/webhook-endpoints/{id}',
    summary: 'Delete a webhook endpoint',
    auth: 'operator',
    params: endpointPath,
    body: emptyBody,
  },
  {
    method: 'post',
    path: '/api/webhook-endpoints/{id}/rotate-secret',
    summary: "Rotate a webhook endpoint's secret",
    auth: 'operator',
    params: endpointPath,
    body: rotateBody,
  },
  {
    method: 'get',
    path: '/api/webhook-endpoints/{id}/deliveries',
    summary: "A webhook endpoint's delivery log, newest first",
    auth: 'operator',
    params: endpointPath,
    query: deliveriesQuery,
  },
  {
    method: 'post',
    path: '/api/webhook-endpoints/{id}/deliveries/{deliveryId}/redeliver',
    summary: 'Send a delivery again now',
    auth: 'operator',
    params: deliveryPath,
    body: emptyBody,
  },
];

type JsonSchema = Record<string, unknown>;

/**
 * The JSON Schema (2020-12, OpenAPI 3.1's dialect) of what a client sends: `io:
 * 'input'` describes a transform by its input (an id is a decimal string, not the
 * bigint it becomes; a time an ISO string, not a Date) and a field with a default
 * as optional. Anything else JSON Schema cannot say throws, so a new route's schema
 * is either described truly or fails the build of the server (and its tests).
 */
function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input' });
  return rest;
}

/** Whether a request may leave the body out. */
const acceptsNoBody = (schema: z.ZodType) => schema.safeParse(undefined).success;

/** The schema of a body that is sent: `undefined` (no body) says nothing about it. */
function sentBody(schema: z.ZodType): z.ZodType {
  if (!(schema instanceof z.ZodUnion)) return schema;
  const sent = (schema.options as readonly z.ZodType[]).filter((o) => !(o instanceof z.ZodUndefined));
  return sent.length === 1 ? sent[0]! : z.union(sent as [z.ZodType, z.ZodType, ...z.ZodType[]]);
}

function parameters(schema: z.ZodType, where: 'path' | 'query', op: Operation): JsonSchema[] {
  const s = jsonSchemaOf(schema);
  if (s.type !== 'object' || typeof s.properties !== 'object' || s.properties === null)
    throw new Error(`openapi: the ${where} schema of ${op.method} ${op.path} is not an object`);
  const required = new Set(Array.isArray(s.required) ? (s.required as string[]) : []);
  return Object.entries(s.properties as Record<string, JsonSchema>).map(([name, prop]) => {
    const { description, ...rest } = prop;
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    };
  });
}

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

const SECURITY: Record<Operation['auth'], Record<string, string[]>[]> = {
  apiKey: [{ apiKey: [] }],
  operator: [{ operatorSession: [] }, { operatorBasic: [] }],
  none: [],
};

function operationObject(op: Operation): JsonSchema {
  const params = [
    ...(op.params ? parameters(op.params, 'path', op) : []),
    ...(op.query ? parameters(op.query, 'query', op) : []),
  ];
  const status = op.status ?? 200;
  const responses: Record<string, unknown> = {
    [String(status)]: { description: status === 204 ? 'No content' : 'OK (JSON)' },
  };
  if (params.length > 0 || op.body) responses['400'] = errorResponse('Invalid request (`invalid_request`)');
  if (op.auth !== 'none') responses['401'] = errorResponse('Missing or wrong credentials (`unauthorized`)');
  responses.default = errorResponse('An error: `{error: {code, message, details?}}`');
  return {
    operationId: operationId(op),
    summary: op.summary,
    tags: [op.path.startsWith('/v1/') ? 'producers' : 'operators'],
    security: SECURITY[op.auth],
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(op.body
      ? {
          requestBody: {
            // Every change under /api must carry a JSON body, `{}` when there is nothing to say
            // (origin.ts), except DELETE.
            required: !acceptsNoBody(op.body) || (op.path.startsWith('/api/') && op.method !== 'delete'),
            content: { 'application/json': { schema: jsonSchemaOf(sentBody(op.body)) } },
          },
        }
      : {}),
    responses,
  };
}

/** post /api/batches/{id}/replay -> postApiBatchesIdReplay. */
function operationId(op: Operation): string {
  const words = op.path.split(/[/{}-]+/).filter(Boolean);
  return op.method + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** The OpenAPI 3.1 document of these operations. */
export function openApiDocument(operations: readonly Operation[] = OPERATIONS): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const item = paths[op.path] ?? {};
    paths[op.path] = item;
    if (item[op.method]) throw new Error(`openapi: ${op.method} ${op.path} is listed twice`);
    item[op.method] = operationObject(op);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'usage-meter',
      version: packageVersion(),
      description:
        "Ingestion and balances for app services (/v1, API keys) and the operators' API (/api). " +
        'See docs/http-api.md.',
    },
    tags: [
      { name: 'producers', description: 'App services and producers: `Authorization: Bearer <API key>`' },
      { name: 'operators', description: "The dashboard's API: the session cookie or HTTP Basic" },
    ],
    paths,
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'A key of API_KEYS' },
        operatorBasic: { type: 'http', scheme: 'basic', description: 'user:password of DASHBOARD_USERS' },
        operatorSession: {
          type: 'apiKey',
          in: 'cookie',
          name: SESSION_COOKIE,
          description: 'The session cookie set by POST /api/session',
        },
      },
      schemas: {
        Error: {
          type: 'object',
          properties: {
            error: {
              type: 'object',
              properties: {
                code: { type: 'string', examples: ['invalid_request'] },
                message: { type: 'string' },
                details: {},
              },
              required: ['code', 'message'],
            },
          },
          required: ['error'],
        },
      },
    },
  };
}

/** Routes registered on each server after registerOpenApiRoute, for the check that they are documented. */
const routesOf = new WeakMap<FastifyInstance, { method: string; url: string }[]>();

/**
 * The app's routes (HEAD included) registered after registerOpenApiRoute: what
 * test/server/openapi.test.ts compares with the document.
 */
export function registeredRoutes(app: FastifyInstance): readonly { method: string; url: string }[] {
  return routesOf.get(app) ?? [];
}

/** GET /openapi.json. Call it before the other routes are registered (it records them). */
export function registerOpenApiRoute(app: FastifyInstance): void {
  const routes: { method: string; url: string }[] = [];
  routesOf.set(app, routes);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method, url: r.url });
  });
  // Built once, when the server is: a schema JSON Schema cannot describe fails here.
  const body = JSON.stringify(openApiDocument());
  app.get('/openapi.json', async (_req, reply) =>
    reply.header('content-type', 'application/json; charset=utf-8').send(body),
  );
}
