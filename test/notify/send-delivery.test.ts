// One delivery attempt against a real receiver: what is sent, what is refused,
// what counts as failure (redirects, timeouts), and how much of an answer is read.
import { afterEach, describe, expect, it } from 'vitest';
import { AddressGuard } from '../../src/notify/address-guard.js';
import { DeliverySender } from '../../src/notify/send-delivery.js';
import { verifyWebhook } from '../../src/notify/signature.js';
import { type Receiver, startReceiver } from '../support/webhook-receiver.js';

const body = JSON.stringify({
  id: 'evt_x',
  type: 'batch.dead',
  createdAt: new Date().toISOString(),
  data: {},
});
const send = (sender: DeliverySender, url: string) =>
  sender.send({ url, body, secrets: ['whsec_t'], notificationId: 'evt_x', type: 'batch.dead', attempt: 1 });

describe('DeliverySender', () => {
  let receiver: Receiver;
  const senders: DeliverySender[] = [];
  const sender = (allowed: string[], timeoutMs?: number) => {
    const s = new DeliverySender(new AddressGuard(allowed), timeoutMs);
    senders.push(s);
    return s;
  };
  afterEach(async () => {
    await receiver?.close();
    for (const s of senders.splice(0)) await s.close();
  });

  it('posts the body with a valid signature and the event headers', async () => {
    receiver = await startReceiver();
    const r = await send(sender(['127.0.0.1']), `${receiver.url}/hook`);
    expect(r).toMatchObject({ ok: true, statusCode: 200 });
    const [got] = await receiver.waitFor(1);
    expect(got!.body).toBe(body);
    expect(got!.headers['content-type']).toBe('application/json');
    expect(got!.headers['x-meter-event-id']).toBe('evt_x');
    expect(got!.headers['x-meter-delivery-attempt']).toBe('1');
    expect(verifyWebhook(got!.body, got!.headers['x-meter-signature'], 'whsec_t').id).toBe('evt_x');
  });

  it('refuses private addresses unless allow-listed, by address and by resolved name', async () => {
    receiver = await startReceiver();
    const port = new URL(receiver.url).port;
    const open = sender([]);
    const literal = await send(open, `${receiver.url}/a`);
    expect(literal.ok).toBe(false);
    expect(literal.error).toMatch(/^refused: .*127\.0\.0\.1 is not a public address/);
    // A name is judged by what it resolves to, at connect time.
    const named = await send(open, `http://localhost:${port}/b`);
    expect(named.ok).toBe(false);
    expect(named.error).toMatch(/refused: localhost: .* is not a public address/);
    const elsewhere = await send(sender(['10.0.0.0/8']), `${receiver.url}/c`);
    expect(elsewhere.error).toMatch(/not in NOTIFY_ALLOWED_HOSTS/);
    // IPv6 literals are judged before any connection: loopback, IPv4-compatible, mapped.
    for (const host of ['[::1]', '[::127.0.0.1]', '[::ffff:127.0.0.1]', '[0:0:0:0:0:ffff:7f00:1]']) {
      const r = await send(open, `http://${host}:${port}/v6`);
      expect({ host, error: r.error }).toEqual({
        host,
        error: expect.stringMatching(/^refused: .* is not a public address/),
      });
    }
    const notHttp = await send(open, 'ftp://example.com/x');
    expect(notHttp.error).toMatch(/only http and https/);
    expect(receiver.received).toEqual([]);
    // A listed name allows what it resolves to.
    expect((await send(sender(['localhost']), `http://localhost:${port}/d`)).ok).toBe(true);
    expect(receiver.received.map((x) => x.path)).toEqual(['/d']);
  });

  it.each([
    ['169.254.169.254', false],
    ['10.1.2.3', false],
    ['172.20.0.1', false],
    ['192.168.1.1', false],
    ['100.64.0.1', false],
    ['0.0.0.0', false],
    ['::1', false],
    ['fd00::1', false],
    ['fe80::1', false],
    ['::ffff:10.0.0.1', false],
    ['::ffff:8.8.8.8', true],
    ['8.8.8.8', true],
    ['2606:4700::1111', true],
  ])('the default guard judges %s public: %s', async (address, allowed) => {
    receiver = await startReceiver();
    expect((await new AddressGuard([]).refusal(address)) === undefined).toBe(allowed);
  });

  it('does not follow a redirect: a 3xx is a failure and the target is never asked', async () => {
    receiver = await startReceiver((_n, r) =>
      r.path === '/from' ? { status: 302, headers: { location: '/to' } } : 200,
    );
    const r = await send(sender(['127.0.0.1']), `${receiver.url}/from`);
    expect(r).toMatchObject({ ok: false, statusCode: 302 });
    expect(r.error).toMatch(/redirect to \/to not followed/);
    expect(receiver.received.map((x) => x.path)).toEqual(['/from']);
  });

  it('keeps no control character of an answer (PostgreSQL text cannot hold a NUL)', async () => {
    receiver = await startReceiver(() => ({ status: 500, body: 'a\u0000b\u0007\r\nc' }));
    const r = await send(sender(['127.0.0.1']), `${receiver.url}/nul`);
    expect(r.error).toBe('HTTP 500: a b c');
  });

  it('reads at most 1 KiB of an answer', async () => {
    receiver = await startReceiver(() => ({ status: 500, body: 'x'.repeat(5_000_000) }));
    const r = await send(sender(['127.0.0.1']), `${receiver.url}/big`);
    expect(r.ok).toBe(false);
    expect(r.error!.length).toBeLessThanOrEqual('HTTP 500: '.length + 1024);
    expect(r.error).toMatch(/^HTTP 500: x+$/);
  });

  it('gives up on an endpoint that does not answer within the timeout', async () => {
    receiver = await startReceiver(() => 'hang');
    const started = Date.now();
    const r = await send(sender(['127.0.0.1'], 300), `${receiver.url}/slow`);
    expect(r).toMatchObject({ ok: false, error: 'no answer within 300 ms' });
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});
