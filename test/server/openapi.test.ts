// GET /openapi.json: an OpenAPI 3.1 document generated from the routes' zod schemas.
// Every /v1 and /api route the server registers is in it with its method, and
// nothing else is; a few schemas are checked against what the routes take.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registeredRoutes } from '../../src/server/openapi.js';
import { startTestServer, type TestServer } from './helpers.js';

// biome-ignore lint/suspicious/noExplicitAny: the document is read field by field and checked with expect
type Json = Record<string, any>;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

let s: TestServer;
let doc: Json;

beforeAll(async () => {
  s = await startTestServer({ label: 'openapi' });
  const res = await fetch(`${s.url}/openapi.json`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  doc = (await res.json()) as Json;
});
afterAll(async () => s?.close());

/** `METHOD /path/{param}` of each operation of the document. */
function documented(): string[] {
  return Object.entries(doc.paths as Record<string, Json>).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((k) => METHODS.includes(k))
      .map((m) => `${m.toUpperCase()} ${path}`),
  );
}

function operation(method: string, path: string): Json {
  const op = doc.paths[path]?.[method];
  if (!op) throw new Error(`${method} ${path} is not in the document`);
  return op;
}

const param = (op: Json, where: string, name: string): Json =>
  op.parameters.find((p: Json) => p.in === where && p.name === name);

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.1 document, served without credentials', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: 'usage-meter', version: expect.any(String) });
    expect(Object.keys(doc.paths).length).toBeGreaterThan(10);
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual([
      'apiKey',
      'operatorBasic',
      'operatorSession',
    ]);
  });

  it('documents every /v1 and /api route the server has, and no other', () => {
    const routes = registeredRoutes(s.app)
      .filter((r) => /^\/(v1|api)\//.test(r.url) && r.method !== 'HEAD')
      .map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, '{$1}')}`);
    // The hook saw the whole server (ingestion, balance, the operator API's plugin).
    expect(routes).toContain('POST /v1/events');
    expect(routes).toContain('GET /api/batches/{id}');
    expect(new Set(routes).size).toBe(routes.length);
    expect([...documented()].sort()).toEqual([...routes].sort());
    // And the router itself agrees, independently of the hook.
    for (const entry of documented()) {
      const [method, path] = entry.split(' ') as [string, string];
      expect(s.app.hasRoute({ method, url: path.replace(/\{(\w+)\}/g, ':$1') }), entry).toBe(true);
    }
  });

  it('is well formed: unique operation ids, path parameters matching the template, refs that resolve', () => {
    const ids = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
      const inTemplate = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      for (const [method, op] of Object.entries(item)) {
        const where = `${method} ${path}`;
        expect(METHODS, where).toContain(method);
        expect(typeof op.summary, where).toBe('string');
        expect(ids.has(op.operationId), `${where}: operationId ${op.operationId} twice`).toBe(false);
        ids.add(op.operationId);
        const params: Json[] = op.parameters ?? [];
        for (const p of params) {
          expect(['path', 'query'], where).toContain(p.in);
          expect(p.schema, `${where} ${p.name}`).toBeTypeOf('object');
          if (p.in === 'path') expect(p.required, `${where} ${p.name}`).toBe(true);
        }
        const inPath = params
          .filter((p) => p.in === 'path')
          .map((p) => p.name)
          .sort();
        expect(inPath, where).toEqual(inTemplate);
        expect(
          Object.keys(op.responses).some((code) => /^2\d\d$/.test(code)),
          where,
        ).toBe(true);
        for (const req of op.security) {
          for (const scheme of Object.keys(req))
            expect(doc.components.securitySchemes, where).toHaveProperty(scheme);
        }
      }
    }
    // Every $ref points into the document; no schema names another dialect.
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) {
        for (const x of v) walk(x);
        return;
      }
      if (v === null || typeof v !== 'object') return;
      for (const [k, x] of Object.entries(v)) {
        expect(k).not.toBe('$schema');
        if (k === '$ref') {
          const target = (x as string)
            .replace(/^#\//, '')
            .split('/')
            .reduce<Json | undefined>((node, key) => node?.[key], doc);
          expect(target, x as string).toBeDefined();
        } else walk(x);
      }
    };
    walk(doc.paths);
  });

  it('describes POST /v1/events: one event or an array of 1 to 1,000, with an API key', () => {
    const op = operation('post', '/v1/events');
    expect(op.security).toEqual([{ apiKey: [] }]);
    expect(op.responses['202']).toBeDefined();
    expect(op.responses['401'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/Error',
    });
    const body = op.requestBody.content['application/json'].schema;
    expect(op.requestBody.required).toBe(true);
    const array = body.anyOf.find((b: Json) => b.type === 'array');
    const single = body.anyOf.find((b: Json) => b.type === 'object');
    expect(array).toMatchObject({ minItems: 1, maxItems: 1000 });
    for (const event of [array.items, single]) {
      expect(event.properties.eventId).toMatchObject({ type: 'string', maxLength: 128 });
      expect(event.required).toEqual(
        expect.arrayContaining(['eventId', 'openId', 'serviceId', 'serviceModeId', 'count']),
      );
      // A default makes a field optional to send.
      expect(event.required).not.toContain('isTestEnv');
      expect(event.additionalProperties).toBe(false);
    }
  });

  it('describes transformed inputs by what a client sends (io: input)', () => {
    const op = operation('get', '/api/batches');
    expect(op.security).toEqual([{ operatorSession: [] }, { operatorBasic: [] }]);
    expect(param(op, 'query', 'status')).toMatchObject({
      required: false,
      schema: { type: 'string', enum: ['open', 'charged', 'partial', 'insufficient', 'dead', 'voided'] },
    });
    // idParam becomes a bigint, instant a Date: documented as the strings they are sent as.
    expect(param(op, 'query', 'cursor').schema).toMatchObject({
      type: 'string',
      pattern: '^[1-9][0-9]{0,18}$',
    });
    expect(param(op, 'query', 'since').schema).toMatchObject({ type: 'string' });
    expect(param(op, 'query', 'limit')).toMatchObject({
      required: false,
      schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
    });
    expect(param(operation('get', '/api/batches/{id}'), 'path', 'id')).toMatchObject({
      required: true,
      schema: { type: 'string', pattern: '^[1-9][0-9]{0,18}$' },
    });
    expect(param(operation('get', '/v1/users/{openId}/balance'), 'query', 'serviceId').required).toBe(true);
  });

  it('marks what each route needs: credentials, and a JSON body for changes under /api', () => {
    expect(operation('post', '/api/session').security).toEqual([]);
    expect(operation('get', '/api/session').security).toHaveLength(2);
    // `{}` (or null) when there is nothing to say: origin.ts wants a JSON body on every change but DELETE.
    const replayDead = operation('post', '/api/batches/replay-dead').requestBody;
    expect(replayDead.required).toBe(true);
    expect(replayDead.content['application/json'].schema.anyOf).toEqual(
      expect.arrayContaining([{ type: 'null' }, expect.objectContaining({ type: 'object' })]),
    );
    expect(operation('delete', '/api/webhook-endpoints/{id}').requestBody.required).toBe(false);
    expect(
      operation('post', '/api/batches/{id}/resolve').requestBody.content['application/json'].schema,
    ).toMatchObject({ properties: { as: { enum: ['charged', 'uncharged'] } }, required: ['as'] });
  });
});
