// The order webhook (service_market_order) and the URL check (verify_webhook) the
// simulator sends, received by a real HTTP server in the test: wire format,
// signature, Msg-Id, retries, the events of insert / deduct-to-zero / delete, the
// control endpoints, and silence when no URL is set.

import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { simulatorOptionsFromEnv } from '../../src/simulator/env.js';
import {
  NoWebhookUrlError,
  type RunningSimulator,
  type SimulatorOptions,
  startSimulator,
  WEBHOOK_DEFAULTS,
} from '../../src/simulator/index.js';
import { call, code, DECR, DELETE, decrBody, INSERT, purchaseBody } from './helpers.js';

const KEY = 'wh-client-key';
const SECRET = 'wh-client-secret';
const DAY_MS = 86_400_000;

interface Received {
  headers: IncomingHttpHeaders;
  raw: string;
}

/** What the receiver does with the n-th request (0-based): answer, or never answer. */
type Answer = { status: number; body?: string } | 'hang';

interface Receiver {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

async function startReceiver(answer: (n: number, raw: string) => Answer = () => ({ status: 200 })) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const n = received.length;
      received.push({ headers: req.headers, raw });
      const a = answer(n, raw);
      if (a === 'hang') return;
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(a.body ?? '{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}/douyin/webhook`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return receiver;
}

const sha1 = (s: string) => createHash('sha1').update(s, 'utf8').digest('hex');

/** The parsed body, with `content` parsed too (it must be a JSON string). */
function order(r: Received) {
  const body = JSON.parse(r.raw);
  expect(typeof body.content).toBe('string');
  return { body, content: JSON.parse(body.content) };
}

describe('simulator order webhooks', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function receiver(answer?: (n: number, raw: string) => Answer) {
    const r = await startReceiver(answer);
    cleanups.push(() => r.close());
    return r;
  }

  async function sim(options: SimulatorOptions = {}) {
    const s = await startSimulator({ clientKey: KEY, clientSecret: SECRET, ...options });
    cleanups.push(() => s.close());
    return s;
  }

  async function token(s: RunningSimulator): Promise<string> {
    const a = await call(s, 'oauth/client_token/', {
      body: { client_key: KEY, client_secret: SECRET, grant_type: 'client_credential' },
    });
    return a.json.data.access_token as string;
  }

  /** Waits until every recorded message is delivered or failed. */
  async function settled(s: RunningSimulator, count: number) {
    await vi.waitFor(
      () => {
        const w = s.state().webhooks;
        expect(w.last.length).toBe(count);
        expect(w.last.every((m) => m.status !== 'pending')).toBe(true);
      },
      { timeout: 10_000, interval: 10 },
    );
    return s.state().webhooks;
  }

  it('an imported purchase sends order_event 1, signed with the secret, content a JSON string', async () => {
    const rx = await receiver();
    const s = await sim({ webhookUrl: rx.url });
    const t = await token(s);
    const p = purchaseBody({ usage_times: 10, duration: 30 });
    expect(code(await call(s, INSERT, { body: p, token: t }))).toBe(0);
    const w = await settled(s, 1);
    expect(rx.received).toHaveLength(1);
    const [m] = rx.received as [Received];

    expect(m.headers['content-type']).toBe('application/json');
    expect(m.headers['x-douyin-signature']).toBe(sha1(SECRET + m.raw));
    expect(m.headers['x-douyin-signature']).toMatch(/^[0-9a-f]{40}$/);
    expect(m.headers['msg-id']).toMatch(/^\S{8,}$/);

    const { body, content } = order(m);
    expect(Object.keys(body)).toEqual(['event', 'client_key', 'from_user_id', 'content', 'log_id']);
    expect(body).toMatchObject({ event: 'service_market_order', client_key: KEY, from_user_id: 'u1' });
    expect(body.log_id).toMatch(/^\S+$/);
    expect(content).toEqual({
      order_id: expect.stringMatching(/^\d{19}$/),
      order_event: 1,
      order_snapshot: {
        service_id: 's1',
        service_mode_id: 'm1',
        specification_id: 'm1',
        remain_service_times: 10,
        effective_time: p.purchase_time,
        expire_time: p.purchase_time + 30 * DAY_MS,
      },
    });

    expect(w).toMatchObject({ sent: 1, delivered: 1, failed: 0, attempts: 1 });
    expect(w.last[0]).toMatchObject({
      msgId: m.headers['msg-id'],
      event: 'service_market_order',
      orderId: content.order_id,
      orderEvent: 1,
      openId: 'u1',
      remaining: 10,
      url: rx.url,
      attempts: 1,
      status: 'delivered',
      httpStatus: 200,
    });

    // The identical insert again changes nothing, so it sends nothing.
    expect(code(await call(s, INSERT, { body: p, token: t }))).toBe(0);
    await sleep(200);
    expect(rx.received).toHaveLength(1);
    expect(s.state().webhooks.sent).toBe(1);
  });

  it('a deduction that leaves 0 sends order_event 4; a delete sends 5 with the purchase order id', async () => {
    const rx = await receiver();
    const s = await sim({ webhookUrl: rx.url, testWhitelist: ['u1'] });
    const t = await token(s);
    const events = async (n: number) => {
      await settled(s, n);
      return rx.received.map((r) => order(r).content);
    };

    expect(code(await call(s, INSERT, { body: purchaseBody({ usage_times: 3 }), token: t }))).toBe(0);
    const [paid] = await events(1);
    expect(paid).toMatchObject({ order_event: 1, order_snapshot: { remain_service_times: 3 } });

    // Leaves 1: nothing. A test-mode call deducts nothing: nothing.
    expect(code(await call(s, DECR, { body: decrBody({ count: 2 }), token: t }))).toBe(0);
    expect(code(await call(s, DECR, { body: decrBody({ is_test_env: true }), token: t }))).toBe(0);
    await sleep(150);
    expect(rx.received).toHaveLength(1);

    const last = decrBody({ count: 1 });
    expect(code(await call(s, DECR, { body: last, token: t }))).toBe(0);
    const second = (await events(2))[1];
    expect(second).toEqual({
      order_id: paid.order_id,
      order_event: 4,
      order_snapshot: expect.objectContaining({
        service_id: 's1',
        service_mode_id: 'm1',
        specification_id: 'm1',
        remain_service_times: 0,
      }),
    });
    // A replay of it deducts nothing, so it sends nothing.
    expect(code(await call(s, DECR, { body: last, token: t }))).toBe(0);
    await sleep(150);
    expect(rx.received).toHaveLength(2);

    const p2 = purchaseBody({ usage_times: 5 });
    expect(code(await call(s, INSERT, { body: p2, token: t }))).toBe(0);
    const paid2 = (await events(3))[2];
    expect(paid2).toMatchObject({ order_event: 1, order_snapshot: { remain_service_times: 5 } });
    expect(paid2.order_id).not.toBe(paid.order_id);
    expect(code(await call(s, DECR, { body: decrBody({ count: 1 }), token: t }))).toBe(0);

    const del = { open_id: 'u1', out_trade_no: p2.out_trade_no, service_id: 's1', service_mode_id: 'm1' };
    expect(code(await call(s, DELETE, { body: del, token: t }))).toBe(0);
    const cancelled = (await events(4))[3];
    expect(cancelled).toMatchObject({
      order_id: paid2.order_id,
      order_event: 5,
      order_snapshot: { remain_service_times: 0 },
    });
    // Deleting it again fails (2119003) and sends nothing.
    expect(code(await call(s, DELETE, { body: del, token: t }))).toBe(2119003);
    await sleep(150);
    expect(rx.received).toHaveLength(4);
    expect(s.state().webhooks.last.map((m) => m.orderEvent)).toEqual([1, 4, 1, 5]);
    // Every message has its own Msg-Id.
    expect(new Set(rx.received.map((r) => r.headers['msg-id'])).size).toBe(4);
  });

  it('retries a non-2xx answer with the same Msg-Id and body: 500, 500, 200 is delivered in 3 attempts', async () => {
    const rx = await receiver((n) => ({ status: n < 2 ? 500 : 200 }));
    const s = await sim({ webhookUrl: rx.url, webhookRetryDelaysMs: [20, 20, 20] });
    const t = await token(s);
    expect(code(await call(s, INSERT, { body: purchaseBody(), token: t }))).toBe(0);
    const w = await settled(s, 1);
    expect(rx.received).toHaveLength(3);
    const ids = rx.received.map((r) => r.headers['msg-id']);
    expect(ids[0]).toBeTruthy();
    expect(new Set(ids)).toEqual(new Set([ids[0]]));
    expect(new Set(rx.received.map((r) => r.raw)).size).toBe(1);
    for (const r of rx.received) expect(r.headers['x-douyin-signature']).toBe(sha1(SECRET + r.raw));
    expect(w).toMatchObject({ sent: 1, delivered: 1, failed: 0, attempts: 3 });
    expect(w.last[0]).toMatchObject({ msgId: ids[0], attempts: 3, status: 'delivered', httpStatus: 200 });
    expect(w.last[0]?.error).toBeUndefined();
  });

  it('gives up after 4 attempts (the first and 3 retries), counting the failure', async () => {
    const rx = await receiver(() => ({ status: 503 }));
    const s = await sim({ webhookUrl: rx.url, webhookRetryDelaysMs: [10, 10, 10] });
    const t = await token(s);
    expect(code(await call(s, INSERT, { body: purchaseBody(), token: t }))).toBe(0);
    const w = await settled(s, 1);
    await sleep(150);
    expect(rx.received).toHaveLength(4);
    expect(new Set(rx.received.map((r) => r.headers['msg-id'])).size).toBe(1);
    expect(w).toMatchObject({ sent: 1, delivered: 0, failed: 1, attempts: 4 });
    expect(w.last[0]).toMatchObject({ attempts: 4, status: 'failed', httpStatus: 503, error: 'HTTP 503' });
  });

  it('a timeout is a failed attempt, and the business call never waits for the webhook', async () => {
    const rx = await receiver(() => 'hang');
    const s = await sim({ webhookUrl: rx.url, webhookTimeoutMs: 300, webhookRetryDelaysMs: [10] });
    const t = await token(s);
    const started = Date.now();
    expect(code(await call(s, INSERT, { body: purchaseBody(), token: t }))).toBe(0);
    expect(Date.now() - started).toBeLessThan(250);
    expect(s.state().webhooks.last[0]?.status).toBe('pending');
    const w = await settled(s, 1);
    expect(rx.received).toHaveLength(2);
    expect(w).toMatchObject({ sent: 1, delivered: 0, failed: 1, attempts: 2 });
    expect(w.last[0]).toMatchObject({ status: 'failed', error: 'timeout after 300 ms' });
    expect(w.last[0]?.httpStatus).toBeUndefined();
  });

  it('a connection error is a failed attempt, retried', async () => {
    const rx = await startReceiver();
    const url = rx.url;
    await rx.close(); // nothing listens there any more
    const s = await sim({ webhookUrl: url, webhookRetryDelaysMs: [5, 5, 5] });
    const w = await s.sendWebhook({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1' });
    expect(w).toMatchObject({ status: 'failed', attempts: 4, error: 'ECONNREFUSED' });
    expect(s.state().webhooks).toMatchObject({ sent: 1, failed: 1, attempts: 4 });
  });

  it('POST /_sim/webhooks/send sends one on demand and answers the delivery; bad bodies are 400', async () => {
    const rx = await receiver((n) => ({ status: n === 1 ? 500 : 200 }));
    const s = await sim({ webhookUrl: rx.url, webhookRetryDelaysMs: [5] });
    // Balances set directly send nothing...
    s.setBalance({ openId: 'u9', serviceId: 's9', serviceModeId: 'm9', remaining: 42 });
    expect(
      (
        await call(s, '_sim/balances', {
          body: { openId: 'u9', serviceId: 's9', serviceModeId: 'm8', remaining: 1 },
        })
      ).status,
    ).toBe(200);
    await sleep(150);
    expect(rx.received).toHaveLength(0);

    // ...unless asked: the defaults are order_event 1 and the current remaining times.
    const a = await call(s, '_sim/webhooks/send', {
      body: { openId: 'u9', serviceId: 's9', serviceModeId: 'm9' },
    });
    expect(a.status).toBe(200);
    expect(a.json).toMatchObject({ status: 'delivered', attempts: 1, orderEvent: 1, remaining: 42 });
    expect(rx.received).toHaveLength(1);
    expect(rx.received[0]?.headers['msg-id']).toBe(a.json.msgId);
    expect(order(rx.received[0] as Received).content).toMatchObject({
      order_id: a.json.orderId,
      order_event: 1,
      order_snapshot: {
        service_id: 's9',
        service_mode_id: 'm9',
        specification_id: 'm9',
        remain_service_times: 42,
      },
    });

    // Given values; the receiver fails the first attempt of this one.
    const b = await call(s, '_sim/webhooks/send', {
      body: {
        openId: 'u9',
        serviceId: 's9',
        serviceModeId: 'm9',
        orderEvent: 2,
        remaining: 7,
        orderId: 'o-1',
      },
    });
    expect(b.json).toMatchObject({
      status: 'delivered',
      attempts: 2,
      orderEvent: 2,
      remaining: 7,
      orderId: 'o-1',
    });
    expect(rx.received.slice(1).map((r) => r.headers['msg-id'])).toEqual([b.json.msgId, b.json.msgId]);
    expect(order(rx.received[2] as Received).content).toMatchObject({
      order_id: 'o-1',
      order_event: 2,
      order_snapshot: { remain_service_times: 7 },
    });

    for (const body of [
      { openId: '', serviceId: 's', serviceModeId: 'm' },
      { openId: 'u', serviceId: 's' },
      { openId: 'u', serviceId: 's', serviceModeId: 'm', orderEvent: 6 },
      { openId: 'u', serviceId: 's', serviceModeId: 'm', remaining: -1 },
      { openId: 'u', serviceId: 's', serviceModeId: 'm', nonsense: 1 },
      '{x',
    ]) {
      const bad = await call(s, '_sim/webhooks/send', { body });
      expect({ body, status: bad.status, problems: Array.isArray(bad.json?.problems) }).toEqual({
        body,
        status: 400,
        problems: true,
      });
    }
    const named = await call(s, '_sim/webhooks/send', {
      body: { openId: 'u', serviceId: 's', serviceModeId: 'm', orderEvent: 0 },
    });
    expect(JSON.stringify(named.json.problems)).toContain('orderEvent');
    expect(rx.received).toHaveLength(3);
    expect(s.state().webhooks).toMatchObject({ sent: 2, delivered: 2, attempts: 3 });
  });

  it('POST /_sim/webhooks/verify sends the signed URL check and says whether the challenge came back', async () => {
    let mode: 'echo' | 'wrong' | 'text' | 'error' = 'echo';
    const rx = await receiver((_n, raw) => {
      const body = JSON.parse(raw);
      const challenge = body.content.challenge as number;
      if (mode === 'echo') return { status: 200, body: JSON.stringify({ challenge }) };
      if (mode === 'wrong') return { status: 200, body: JSON.stringify({ challenge: challenge + 1 }) };
      if (mode === 'text') return { status: 200, body: 'ok' };
      return { status: 500, body: JSON.stringify({ challenge }) };
    });
    const s = await sim({ webhookUrl: rx.url });

    const ok = await call(s, '_sim/webhooks/verify', { method: 'POST' });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ ok: true, httpStatus: 200 });
    const m = rx.received[0] as Received;
    const body = JSON.parse(m.raw);
    expect(body).toEqual({
      event: 'verify_webhook',
      client_key: KEY,
      content: { challenge: ok.json.challenge },
    });
    expect(Number.isInteger(body.content.challenge)).toBe(true);
    expect(m.headers['x-douyin-signature']).toBe(sha1(SECRET + m.raw));
    expect(m.headers['content-type']).toBe('application/json');
    expect(m.headers['msg-id']).toBe(ok.json.msgId);

    for (const [m2, error] of [
      ['wrong', /echo/],
      ['text', /not JSON/],
      ['error', /HTTP 500/],
    ] as const) {
      mode = m2;
      const r = await s.verifyWebhook();
      expect({ mode, ok: r.ok }).toEqual({ mode, ok: false });
      expect(r.error).toMatch(error);
    }
    // One attempt each, no retries; and URL checks are not order messages.
    expect(rx.received).toHaveLength(4);
    expect(s.state().webhooks).toMatchObject({ sent: 0, attempts: 0, last: [] });
    // A fresh challenge each time.
    expect(new Set(rx.received.map((r) => JSON.parse(r.raw).content.challenge)).size).toBe(4);
  });

  it('sends nothing without a URL; the URL can be set and removed at run time (POST /_sim/settings)', async () => {
    const rx = await receiver();
    const s = await sim();
    const t = await token(s);
    const p = purchaseBody({ usage_times: 1 });
    expect(code(await call(s, INSERT, { body: p, token: t }))).toBe(0);
    expect(code(await call(s, DECR, { body: decrBody({ count: 1 }), token: t }))).toBe(0);
    const del = { open_id: 'u1', out_trade_no: p.out_trade_no, service_id: 's1', service_mode_id: 'm1' };
    expect(code(await call(s, DELETE, { body: del, token: t }))).toBe(0);
    expect(
      (await call(s, '_sim/webhooks/send', { body: { openId: 'u1', serviceId: 's1', serviceModeId: 'm1' } }))
        .status,
    ).toBe(409);
    expect((await call(s, '_sim/webhooks/verify', { method: 'POST' })).status).toBe(409);
    await expect(
      s.sendWebhook({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1' }),
    ).rejects.toBeInstanceOf(NoWebhookUrlError);
    await expect(s.verifyWebhook()).rejects.toBeInstanceOf(NoWebhookUrlError);
    await sleep(150);
    expect(rx.received).toHaveLength(0);
    expect(s.state().webhooks).toEqual({ sent: 0, delivered: 0, failed: 0, attempts: 0, last: [] });
    expect((await call(s, '_sim/settings')).json).not.toHaveProperty('webhookUrl');

    const on = await call(s, '_sim/settings', { body: { webhookUrl: rx.url } });
    expect(on.json.webhookUrl).toBe(rx.url);
    expect(code(await call(s, INSERT, { body: purchaseBody(), token: t }))).toBe(0);
    await settled(s, 1);
    expect(rx.received).toHaveLength(1);

    for (const webhookUrl of ['ftp://example.com/', 'not a url', '', 5]) {
      const bad = await call(s, '_sim/settings', { body: { webhookUrl } });
      expect({ webhookUrl, status: bad.status }).toEqual({ webhookUrl, status: 400 });
    }
    const off = await call(s, '_sim/settings', { body: { webhookUrl: null } });
    expect(off.status).toBe(200);
    expect(off.json).not.toHaveProperty('webhookUrl');
    expect(code(await call(s, INSERT, { body: purchaseBody(), token: t }))).toBe(0);
    await sleep(150);
    expect(rx.received).toHaveLength(1);

    // Reset returns to the start options: no URL here.
    s.setSettings({ webhookUrl: rx.url });
    s.reset();
    expect(s.settings()).not.toHaveProperty('webhookUrl');
  });

  it('reset cancels deliveries under way and clears the records; close does not wait for them', async () => {
    const rx = await receiver(() => 'hang');
    const s = await sim({ webhookUrl: rx.url });
    expect(WEBHOOK_DEFAULTS).toEqual({ timeoutMs: 5000, retryDelaysMs: [100, 500, 2000] });
    const pending = s.sendWebhook({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1' });
    await vi.waitFor(() => expect(rx.received).toHaveLength(1));
    expect(s.state().webhooks).toMatchObject({ sent: 1, last: [{ status: 'pending' }] });
    s.reset();
    expect(s.state().webhooks).toEqual({ sent: 0, delivered: 0, failed: 0, attempts: 0, last: [] });
    const started = Date.now();
    expect(await pending).toMatchObject({ status: 'failed', error: expect.stringMatching(/cancelled/) });
    expect(Date.now() - started).toBeLessThan(1000);
    await sleep(200);
    expect(rx.received).toHaveLength(1);
    expect(s.state().webhooks.sent).toBe(0);

    // The URL is a start option, so it survives reset; a send under way does not hold close().
    void s.sendWebhook({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1' });
    await vi.waitFor(() => expect(rx.received).toHaveLength(2));
    const closing = Date.now();
    await s.close();
    expect(Date.now() - closing).toBeLessThan(1000);
  });

  it('reads SIM_WEBHOOK_URL, SIM_WEBHOOK_TIMEOUT_MS and SIM_WEBHOOK_RETRY_DELAYS_MS', () => {
    expect(
      simulatorOptionsFromEnv({
        SIM_WEBHOOK_URL: 'http://127.0.0.1:3000/hook',
        SIM_WEBHOOK_TIMEOUT_MS: '1000',
        SIM_WEBHOOK_RETRY_DELAYS_MS: '10, 20,30',
      }),
    ).toMatchObject({
      webhookUrl: 'http://127.0.0.1:3000/hook',
      webhookTimeoutMs: 1000,
      webhookRetryDelaysMs: [10, 20, 30],
    });
    expect(simulatorOptionsFromEnv({ SIM_WEBHOOK_RETRY_DELAYS_MS: 'none' }).webhookRetryDelaysMs).toEqual([]);
    const none = simulatorOptionsFromEnv({ SIM_WEBHOOK_URL: ' ' });
    expect(none).not.toHaveProperty('webhookUrl');
    expect(none).not.toHaveProperty('webhookRetryDelaysMs');
    for (const env of [
      { SIM_WEBHOOK_URL: 'localhost:3000' },
      { SIM_WEBHOOK_TIMEOUT_MS: '0' },
      { SIM_WEBHOOK_RETRY_DELAYS_MS: '10,x' },
      { SIM_WEBHOOK_RETRY_DELAYS_MS: '700000' },
    ]) {
      expect(() => simulatorOptionsFromEnv(env), JSON.stringify(env)).toThrow(Object.keys(env)[0]);
    }
  });
});
