// /api/webhook-endpoints on a real server: operators make, change, rotate and delete
// endpoints; the secret is shown once and never logged; destinations are checked;
// cross-origin changes are refused; the delivery log and redeliver.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redactPaths } from '../../src/logger.js';
import { createNotifyQueue } from '../../src/notify/queue.js';
import { startTestServer, type TestServer } from './helpers.js';

let s: TestServer;
const logs: string[] = [];
beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  s = await startTestServer({
    label: 'webhook_endpoints',
    notifyAllowedHosts: ['127.0.0.1', 'localhost'],
    logger: pino({ level: 'debug', redact: { paths: redactPaths, censor: '[redacted]' } }, sink),
  });
});
afterAll(async () => s?.close());

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field and checked with expect
type Json = any;
const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as Json });

describe('/api/webhook-endpoints', () => {
  it('creates an endpoint and shows its secret once; lists, changes and deletes it; audits each change', async () => {
    const created = await json(
      await s.api('/api/webhook-endpoints', {
        method: 'POST',
        body: { url: 'http://127.0.0.1:9/hook', description: 'billing app' },
      }),
    );
    expect(created.status).toBe(201);
    const secret = created.body.secret as string;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    const id = created.body.endpoint.id as string;
    // Without event types: every type but the one-per-batch batch.charged.
    expect(created.body.endpoint).toMatchObject({
      url: 'http://127.0.0.1:9/hook',
      description: 'billing app',
      enabled: true,
      lowBalanceThreshold: 10,
      eventTypes: [
        'batch.insufficient',
        'batch.partial',
        'batch.dead',
        'balance.low',
        'purchase.updated',
        'reconcile.drift',
      ],
      deliveries: { pending: 0, delivered: 0, failed: 0, cancelled: 0 },
    });

    const list = await json(await s.api('/api/webhook-endpoints'));
    expect(list.body.items.map((e: { id: string }) => e.id)).toEqual([id]);
    expect(JSON.stringify(list.body)).not.toContain(secret);
    expect(JSON.stringify((await json(await s.api(`/api/webhook-endpoints/${id}`))).body)).not.toContain(
      secret,
    );

    // Stored as the URL parser writes it.
    const normalized = await json(
      await s.api('/api/webhook-endpoints', {
        method: 'POST',
        body: { url: 'HTTP://LOCALHOST:9/a/../b?q=1' },
      }),
    );
    expect(normalized.body.endpoint.url).toBe('http://localhost:9/b?q=1');
    await s.api(`/api/webhook-endpoints/${normalized.body.endpoint.id}`, { method: 'DELETE' });

    // balance.low's state is per threshold: changing it starts afresh.
    await s.db.balanceLowState.create({
      data: { endpointId: BigInt(id), keyId: 1, threshold: 10, available: 2 },
    });
    const changed = await json(
      await s.api(`/api/webhook-endpoints/${id}`, {
        method: 'PATCH',
        body: { eventTypes: ['batch.charged', 'batch.dead', 'batch.dead'], lowBalanceThreshold: 3 },
      }),
    );
    expect(changed.body.endpoint).toMatchObject({
      eventTypes: ['batch.charged', 'batch.dead'],
      lowBalanceThreshold: 3,
    });
    expect(await s.db.balanceLowState.count({ where: { endpointId: BigInt(id) } })).toBe(0);

    const rotated = await json(
      await s.api(`/api/webhook-endpoints/${id}/rotate-secret`, {
        method: 'POST',
        body: { keepOldForSec: 3600 },
      }),
    );
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(secret);
    expect(Date.parse(rotated.body.endpoint.previousSecretUntil)).toBeGreaterThan(Date.now() + 3_500_000);
    const row = await s.db.webhookEndpoint.findUniqueOrThrow({ where: { id: BigInt(id) } });
    expect([row.secret, row.previousSecret]).toEqual([rotated.body.secret, secret]);
    const revoked = await json(
      await s.api(`/api/webhook-endpoints/${id}/rotate-secret`, { method: 'POST', body: {} }),
    );
    expect(revoked.body.endpoint.previousSecretUntil).toBeNull();
    expect(
      (await s.db.webhookEndpoint.findUniqueOrThrow({ where: { id: BigInt(id) } })).previousSecret,
    ).toBeNull();

    expect((await s.api(`/api/webhook-endpoints/${id}`, { method: 'DELETE' })).status).toBe(200);
    expect((await s.api(`/api/webhook-endpoints/${id}`)).status).toBe(404);
    expect((await s.api(`/api/webhook-endpoints/${id}`, { method: 'DELETE' })).status).toBe(404);

    const audit = await s.db.operatorAudit.findMany({ where: { target: id }, orderBy: { id: 'asc' } });
    expect(audit.map((a) => a.action)).toEqual([
      'webhook-endpoint.create',
      'webhook-endpoint.update',
      'webhook-endpoint.rotate-secret',
      'webhook-endpoint.rotate-secret',
      'webhook-endpoint.delete',
    ]);
    expect(audit.every((a) => a.actor === 'ops')).toBe(true);
    // No secret in the audit trail or in any log line.
    const everything = JSON.stringify(audit.map((a) => [a.target, a.details])) + logs.join('');
    for (const sec of [secret, rotated.body.secret, revoked.body.secret])
      expect(everything).not.toContain(sec);
    expect(logs.some((l) => l.includes('webhook-endpoint.create'))).toBe(true);
  });

  it.each([
    [{ url: 'ftp://127.0.0.1/x' }, 400, 'invalid_request', /url: must be an http or https URL/],
    [{ url: 'not a url' }, 400, 'invalid_request', /url/],
    [{ url: 'http://127.0.0.1:9/x', eventTypes: ['batch.exploded'] }, 400, 'invalid_request', /eventTypes/],
    [{ url: 'http://127.0.0.1:9/x', eventTypes: [] }, 400, 'invalid_request', /at least one event type/],
    [{ url: 'http://127.0.0.1:9/x', secret: 'mine' }, 400, 'invalid_request', /secret/],
    [{ url: 'http://10.0.0.5/x' }, 400, 'destination_refused', /10\.0\.0\.5 is not in NOTIFY_ALLOWED_HOSTS/],
    [{ url: 'http://169.254.169.254/latest' }, 400, 'destination_refused', /NOTIFY_ALLOWED_HOSTS/],
    [{ url: 'http://user:pw@127.0.0.1/x' }, 400, 'destination_refused', /credentials/],
    [{ url: 'http://127.0.0.1/x\u0000' }, 400, 'invalid_request', /url: must not contain control characters/],
    [
      { url: 'http://127.0.0.1/x', description: 'a\u0000b' },
      400,
      'invalid_request',
      /description: must not contain/,
    ],
    [{ url: 'http://[::ffff:a00:1]/x' }, 400, 'destination_refused', /not in NOTIFY_ALLOWED_HOSTS/],
  ])('refuses %j with %i %s', async (body, status, code, message) => {
    const before = await s.db.webhookEndpoint.count();
    const res = await json(await s.api('/api/webhook-endpoints', { method: 'POST', body }));
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(res.body.error.message).toMatch(message);
    expect(await s.db.webhookEndpoint.count()).toBe(before);
  });

  it('refuses cross-origin changes and requests without an operator', async () => {
    const before = await s.db.webhookEndpoint.count();
    const evil = await fetch(`${s.url}/api/webhook-endpoints`, {
      method: 'POST',
      headers: { origin: 'https://evil.example', 'content-type': 'application/json', cookie: 'x=y' },
      body: JSON.stringify({ url: 'http://127.0.0.1:9/x' }),
    });
    expect(evil.status).toBe(403);
    const anonymous = await fetch(`${s.url}/api/webhook-endpoints`);
    expect(anonymous.status).toBe(401);
    expect(await s.db.webhookEndpoint.count()).toBe(before);
  });

  it('lists deliveries newest first and redelivers one with the same notification: a new job, pending again', async () => {
    const { body } = await json(
      await s.api('/api/webhook-endpoints', {
        method: 'POST',
        body: { url: 'http://localhost:9/x', eventTypes: ['batch.dead'] },
      }),
    );
    const endpointId = BigInt(body.endpoint.id);
    const ids: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const n = await s.db.notification.create({ data: { type: 'batch.dead', data: { i } } });
      const d = await s.db.notificationDelivery.create({
        data: {
          notificationId: n.id,
          endpointId,
          status: 'failed',
          attempts: 5,
          lastStatusCode: 500,
          lastError: 'HTTP 500',
        },
      });
      ids.push(d.id);
    }
    const page1 = await json(await s.api(`/api/webhook-endpoints/${endpointId}/deliveries?limit=2`));
    expect(page1.body.items.map((d: { id: string }) => d.id)).toEqual([String(ids[2]), String(ids[1])]);
    expect(page1.body.items[0]).toMatchObject({
      type: 'batch.dead',
      status: 'failed',
      attempts: 5,
      lastStatusCode: 500,
    });
    const page2 = await json(
      await s.api(`/api/webhook-endpoints/${endpointId}/deliveries?limit=2&cursor=${page1.body.nextCursor}`),
    );
    expect(page2.body).toMatchObject({ items: [{ id: String(ids[0]) }], nextCursor: null });

    const queue = createNotifyQueue(s.redis, s.prefix);
    try {
      const again = await json(
        await s.api(`/api/webhook-endpoints/${endpointId}/deliveries/${ids[0]}/redeliver`, {
          method: 'POST',
          body: {},
        }),
      );
      expect(again.body.delivery).toMatchObject({ id: String(ids[0]), status: 'pending', redeliveries: 1 });
      const twice = await json(
        await s.api(`/api/webhook-endpoints/${endpointId}/deliveries/${ids[0]}/redeliver`, {
          method: 'POST',
          body: {},
        }),
      );
      expect(twice.body.delivery.redeliveries).toBe(2);
      const jobs = await queue.getJobs(['waiting']);
      expect(jobs.map((j) => j.id).sort()).toEqual([`d-${ids[0]}-r1`, `d-${ids[0]}-r2`]);
      // Another endpoint's delivery: not found there, and left as it was.
      const other = await json(
        await s.api('/api/webhook-endpoints', { method: 'POST', body: { url: 'http://localhost:9/other' } }),
      );
      const through = await json(
        await s.api(`/api/webhook-endpoints/${other.body.endpoint.id}/deliveries/${ids[1]}/redeliver`, {
          method: 'POST',
          body: {},
        }),
      );
      expect(through.status).toBe(404);
      expect((await s.db.notificationDelivery.findUniqueOrThrow({ where: { id: ids[1]! } })).status).toBe(
        'failed',
      );
      // One of a disabled endpoint: refused.
      // An operator disables the endpoint: its pending delivery is cancelled at once.
      const off = await json(
        await s.api(`/api/webhook-endpoints/${endpointId}`, { method: 'PATCH', body: { enabled: false } }),
      );
      expect(off.body.endpoint).toMatchObject({ enabled: false, disabledReason: 'disabled by an operator' });
      expect(await s.db.notificationDelivery.findUniqueOrThrow({ where: { id: ids[0]! } })).toMatchObject({
        status: 'cancelled',
        lastError: 'HTTP 500 / cancelled: endpoint disabled',
      });
      const disabled = await json(
        await s.api(`/api/webhook-endpoints/${endpointId}/deliveries/${ids[1]}/redeliver`, {
          method: 'POST',
          body: {},
        }),
      );
      expect(disabled).toMatchObject({ status: 409, body: { error: { code: 'endpoint_disabled' } } });
      expect((await s.db.notificationDelivery.findUniqueOrThrow({ where: { id: ids[1]! } })).status).toBe(
        'failed',
      );
      // Enabling clears the disabled notice.
      await s.db.webhookEndpoint.update({
        where: { id: endpointId },
        data: { disabledReason: 'failing since x', failingSince: new Date() },
      });
      const enabled = await json(
        await s.api(`/api/webhook-endpoints/${endpointId}`, { method: 'PATCH', body: { enabled: true } }),
      );
      expect(enabled.body.endpoint).toMatchObject({
        enabled: true,
        disabledReason: null,
        failingSince: null,
      });
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });
});
