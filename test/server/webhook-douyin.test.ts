// Douyin's webhook on the server (src/server/webhook-douyin.ts, src/orders/): the
// signature is checked before anything is stored, the URL check is answered, each
// Msg-Id is stored once, raw, and order events become orders and balance snapshots.
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../../src/metrics.js';
import { processWebhookMessages } from '../../src/orders/process-webhook-messages.js';
import { startSimulator } from '../../src/simulator/index.js';
import { simulatorClient } from '../support/douyin.js';
import { redisUrl } from '../support/services.js';
import { API_KEY, startTestServer, type TestServer } from './helpers.js';

const SECRET = 'webhook-test-secret';
let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ label: 'webhook', douyinClientSecret: SECRET });
});
afterAll(async () => s.close());

const sign = (body: string, secret = SECRET) =>
  createHash('sha1')
    .update(secret + body)
    .digest('hex');

const post = (body: string, headers: Record<string, string>) =>
  fetch(`${s.url}/webhooks/douyin`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });

const orderBody = (o: {
  orderId: string;
  openId: string;
  event?: number;
  remaining?: number;
  snapshot?: object;
}) =>
  JSON.stringify({
    event: 'service_market_order',
    client_key: 'ck',
    from_user_id: o.openId,
    content: JSON.stringify({
      order_id: o.orderId,
      order_event: o.event ?? 1,
      order_snapshot: o.snapshot ?? {
        service_id: 'svc-w',
        specification_id: 'mode-w',
        remain_service_times: o.remaining ?? 10,
        effective_time: 1_700_000_000_000,
        expire_time: -1,
      },
    }),
    log_id: `log-${o.orderId}`,
  });

const messages = () => s.db.douyinWebhookMessage.findMany({ orderBy: { id: 'asc' } });
const refusedCount = async (result: string) =>
  (await registry.getSingleMetric('um_douyin_webhook_messages_total')!.get()).values.find(
    (v) => v.labels.result === result,
  )?.value ?? 0;

describe('POST /webhooks/douyin', () => {
  it('refuses a missing or wrong signature with 401 and stores nothing', async () => {
    const body = orderBody({ orderId: 'O-bad', openId: 'u-bad' });
    const missingBefore = await refusedCount('signature_missing');
    const invalidBefore = await refusedCount('signature_invalid');
    expect((await post(body, { 'msg-id': 'm-bad-1' })).status).toBe(401);
    expect(
      (await post(body, { 'msg-id': 'm-bad-2', 'x-douyin-signature': sign(body, 'another') })).status,
    ).toBe(401);
    // A valid signature of another body does not sign this one.
    const other = orderBody({ orderId: 'O-other', openId: 'u-bad' });
    expect((await post(body, { 'msg-id': 'm-bad-3', 'x-douyin-signature': sign(other) })).status).toBe(401);
    expect((await post(body, { 'msg-id': 'm-bad-4', 'x-douyin-signature': 'not-hex' })).status).toBe(401);
    expect(await messages()).toEqual([]);
    expect(await refusedCount('signature_missing')).toBe(missingBefore + 1);
    expect(await refusedCount('signature_invalid')).toBe(invalidBefore + 3);
  });

  it('answers the URL check with its challenge', async () => {
    const body = JSON.stringify({ event: 'verify_webhook', client_key: 'ck', content: { challenge: 12345 } });
    const res = await post(body, { 'x-douyin-signature': sign(body) });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('{"challenge":12345}');
    // Unsigned, it gets no answer but 401.
    expect((await post(body, {})).status).toBe(401);
  });

  it('stores a signed order once per Msg-Id, raw, and processes it into an order', async () => {
    const body = orderBody({ orderId: 'O-1', openId: 'u-order', remaining: 42 });
    const headers = { 'msg-id': 'm-order-1', 'x-douyin-signature': sign(body).toUpperCase() };
    const first = await post(body, headers);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ ok: true, duplicate: false });
    expect(await (await post(body, headers)).json()).toEqual({ ok: true, duplicate: true });
    const stored = (await messages()).filter((m) => m.msgId === 'm-order-1');
    expect(stored).toHaveLength(1);
    expect(stored[0]!.body).toBe(body);

    // Processed after the answer, by the server's own processor.
    await expect.poll(() => s.db.douyinOrder.count({ where: { openId: 'u-order' } })).toBe(1);
    const orders = await s.db.douyinOrder.findMany({ where: { openId: 'u-order' } });
    expect(orders).toMatchObject([
      {
        orderId: 'O-1',
        orderEvent: 1,
        serviceId: 'svc-w',
        serviceModeId: 'mode-w',
        remainServiceTimes: 42,
        effectiveTime: 1_700_000_000_000n,
        expireTime: -1n,
        logId: 'log-O-1',
      },
    ]);
    // An order is not a balance (one order's snapshot, delivered out of order): none is recorded.
    expect(await s.db.balanceSnapshot.count({ where: { openId: 'u-order' } })).toBe(0);
    expect(
      (await s.db.douyinWebhookMessage.findFirstOrThrow({ where: { msgId: 'm-order-1' } })).processedAt,
    ).not.toBeNull();

    const res = await s.api('/api/orders?openId=u-order');
    expect(res.status).toBe(200);
    expect((await res.json()).items).toMatchObject([
      { orderId: 'O-1', orderEvent: 1, remainServiceTimes: 42 },
    ]);
  });

  it('keeps an unknown event or an unreadable order, marked, and makes nothing of it', async () => {
    const unknown = JSON.stringify({ event: 'something_new', from_user_id: 'u-x', content: '{}' });
    const unreadable = JSON.stringify({
      event: 'service_market_order',
      from_user_id: 'u-x',
      content: 'not json',
    });
    for (const [i, body] of [unknown, unreadable].entries())
      expect((await post(body, { 'msg-id': `m-odd-${i}`, 'x-douyin-signature': sign(body) })).status).toBe(
        200,
      );
    // Processed by a pass of its own too (a crashed server's leftovers are).
    await processWebhookMessages(s.db);
    await expect
      .poll(
        async () =>
          await s.db.douyinWebhookMessage.count({
            where: { msgId: { startsWith: 'm-odd-' }, processedAt: null },
          }),
      )
      .toBe(0);
    const odd = await s.db.douyinWebhookMessage.findMany({
      where: { msgId: { startsWith: 'm-odd-' } },
      orderBy: { msgId: 'asc' },
    });
    expect(odd.map((m) => [m.event, m.processedAt !== null, m.error])).toEqual([
      ['something_new', true, null],
      ['service_market_order', true, 'content is not a JSON string'],
    ]);
    expect(await s.db.douyinOrder.count({ where: { openId: 'u-x' } })).toBe(0);
  });

  it('records an order event once, whatever carried it: a copy sent again under a new Msg-Id adds no order', async () => {
    const body = orderBody({ orderId: 'O-copy', openId: 'u-copy', remaining: 99 });
    for (const msgId of ['m-copy-1', 'm-copy-2'])
      expect((await post(body, { 'msg-id': msgId, 'x-douyin-signature': sign(body) })).status).toBe(200);
    await processWebhookMessages(s.db);
    await expect
      .poll(() =>
        s.db.douyinWebhookMessage.count({ where: { msgId: { startsWith: 'm-copy-' }, processedAt: null } }),
      )
      .toBe(0);
    expect(await s.db.douyinWebhookMessage.count({ where: { msgId: { startsWith: 'm-copy-' } } })).toBe(2);
    expect(await s.db.douyinOrder.count({ where: { orderId: 'O-copy' } })).toBe(1);
  });

  it('stores one message when the same Msg-Id arrives several times at once', async () => {
    const body = orderBody({ orderId: 'O-race', openId: 'u-race' });
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => post(body, { 'msg-id': 'm-race', 'x-douyin-signature': sign(body) })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(200));
    const duplicates = await Promise.all(answers.map(async (a) => (await a.json()).duplicate));
    expect(duplicates.filter((d) => d === false)).toHaveLength(1);
    expect(await s.db.douyinWebhookMessage.count({ where: { msgId: 'm-race' } })).toBe(1);
  });

  it('a message the ledger refuses is marked with why and holds up none after it', async () => {
    await s.db.$executeRawUnsafe(`CREATE OR REPLACE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.order_id = 'O-poison' THEN RAISE EXCEPTION 'test: refused'; END IF; RETURN NEW; END $$`);
    await s.db.$executeRawUnsafe(
      `CREATE TRIGGER refuse_poison BEFORE INSERT ON douyin_order FOR EACH ROW EXECUTE FUNCTION refuse_poison()`,
    );
    try {
      for (const orderId of ['O-poison', 'O-after']) {
        const body = orderBody({ orderId, openId: 'u-poison' });
        expect(
          (await post(body, { 'msg-id': `m-${orderId}`, 'x-douyin-signature': sign(body) })).status,
        ).toBe(200);
      }
      await processWebhookMessages(s.db);
      await expect
        .poll(() =>
          s.db.douyinWebhookMessage.count({
            where: { msgId: { in: ['m-O-poison', 'm-O-after'] }, processedAt: null },
          }),
        )
        .toBe(0);
      const poison = await s.db.douyinWebhookMessage.findFirstOrThrow({ where: { msgId: 'm-O-poison' } });
      expect(poison.error).toMatch(/not recorded: .*test: refused/);
      expect(
        (await s.db.douyinOrder.findMany({ where: { openId: 'u-poison' } })).map((o) => o.orderId),
      ).toEqual(['O-after']);
    } finally {
      await s.db.$executeRawUnsafe('DROP TRIGGER refuse_poison ON douyin_order');
    }
  });

  it('refuses a body over 64 KiB and a signed body that is not JSON, storing neither', async () => {
    const before = (await messages()).length;
    const big = JSON.stringify({ event: 'x', pad: 'a'.repeat(70 * 1024) });
    expect((await post(big, { 'msg-id': 'm-big', 'x-douyin-signature': sign(big) })).status).toBe(413);
    const broken = '{"event": ';
    expect((await post(broken, { 'msg-id': 'm-broken', 'x-douyin-signature': sign(broken) })).status).toBe(
      400,
    );
    expect((await messages()).length).toBe(before);
  });

  it('answers 503 and stores nothing when no client secret is configured', async () => {
    const bare = await startTestServer({ label: 'webhook_bare' });
    try {
      const body = orderBody({ orderId: 'O-2', openId: 'u-2' });
      const res = await fetch(`${bare.url}/webhooks/douyin`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-douyin-signature': sign(body) },
        body,
      });
      expect(res.status).toBe(503);
      expect(await bare.db.douyinWebhookMessage.count()).toBe(0);
    } finally {
      await bare.close();
    }
  });
});

describe('the simulator and the server, end to end', () => {
  it('a purchase made on the simulator reaches the server as a signed order, and the balance reads it', async () => {
    const sim = await startSimulator();
    const redis = new Redis(redisUrl());
    const client = simulatorClient(sim, redis, 'webhook-e2e');
    const server = await startTestServer({
      label: 'webhook_e2e',
      douyinClientSecret: 'sim-client-secret',
      douyin: client,
    });
    sim.setSettings({ webhookUrl: `${server.url}/webhooks/douyin` });
    const balance = async () =>
      (
        await fetch(`${server.url}/v1/users/u-e2e/balance?serviceId=s1&serviceModeId=m1`, {
          headers: { authorization: `Bearer ${API_KEY}` },
        })
      ).json();
    try {
      expect(await sim.verifyWebhook()).toMatchObject({ ok: true });
      sim.setBalance({ openId: 'u-e2e', serviceId: 's1', serviceModeId: 'm1', remaining: 0 });
      expect(await balance()).toMatchObject({ douyinRemaining: 0, source: 'purchase_list' });
      await client.insertPurchaseInfo({
        openId: 'u-e2e',
        serviceId: 's1',
        serviceModeId: 'm1',
        outTradeNo: 'IMPORT-E2E-1',
        periodType: 1,
        purchaseTime: Date.now(),
        usageTimes: 12,
      });
      await expect.poll(() => server.db.douyinOrder.count({ where: { openId: 'u-e2e' } })).toBe(1);
      expect(await server.db.douyinOrder.findFirstOrThrow({ where: { openId: 'u-e2e' } })).toMatchObject({
        orderEvent: 1,
        serviceId: 's1',
        serviceModeId: 'm1',
        remainServiceTimes: 12,
      });
      // The snapshot of 0 is fresh, but older than the order: the balance reads Douyin again.
      expect(await balance()).toMatchObject({ douyinRemaining: 12, source: 'purchase_list', available: 12 });
      expect(sim.state().webhooks).toMatchObject({ sent: 1, delivered: 1, failed: 0 });
    } finally {
      await server.close();
      await client.close();
      await sim.close();
      redis.disconnect();
    }
  });
});
