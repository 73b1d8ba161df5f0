// Cross-origin protection of the requests that change something (src/server/origin.ts):
// a signed-in operator's browser, lured to another page, must not replay, resolve or
// sign in on their behalf. The dashboard's own requests and curl still work.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, OPERATOR, startTestServer, type TestServer } from './helpers.js';

let s: TestServer;
let cookie: string;
let n = 0;

/** A dead batch straight in the ledger, as the worker leaves one. */
async function deadBatch() {
  n += 1;
  const key = await s.db.meterKey.upsert({
    where: {
      openId_serviceId_serviceModeId_isTestEnv: {
        openId: 'csrf',
        serviceId: 's1',
        serviceModeId: 'm1',
        isTestEnv: false,
      },
    },
    create: { openId: 'csrf', serviceId: 's1', serviceModeId: 'm1', isTestEnv: false },
    update: {},
  });
  return s.db.chargeBatch.create({
    data: {
      keyId: key.id,
      outTradeNo: `csrf-${n}`,
      count: 5,
      eventCount: 1,
      status: 'dead',
      deadReason: 'forbidden',
      deadlineAt: new Date(),
      finishedAt: new Date(),
    },
  });
}

const post = (path: string, headers: Record<string, string>, body?: string) =>
  fetch(`${s.url}${path}`, { method: 'POST', headers, body });

async function expectRefused(res: Response, reason: 'cross_origin' | 'json_required') {
  expect(res.status).toBe(403);
  const body = await res.json();
  expect(body).toEqual({
    error: {
      code: 'forbidden',
      message: expect.stringMatching(
        reason === 'cross_origin' ? /cross-origin request refused/ : /JSON body/,
      ),
      details: { reason },
    },
  });
}

beforeAll(async () => {
  s = await startTestServer({ label: 'origin' });
  const res = await fetch(`${s.url}/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(OPERATOR),
  });
  cookie = res.headers.get('set-cookie')!.split(';')[0]!;
});
afterAll(async () => s?.close());

describe('state-changing operator requests from another origin', () => {
  it('a body-less cross-origin POST with a valid session cookie is refused (403) and changes nothing', async () => {
    const dead = await deadBatch();
    const chargeJobs = await s.queues.charge.count();
    const evil = 'https://evil.example';
    for (const [path, headers] of [
      [`/api/batches/${dead.id}/replay`, { cookie, origin: evil }],
      [`/api/batches/${dead.id}/replay`, { cookie, 'sec-fetch-site': 'cross-site' }],
      ['/api/batches/replay-dead', { cookie, origin: evil, 'sec-fetch-site': 'cross-site' }],
      [`/api/batches/${dead.id}/resolve`, { cookie, origin: evil }],
    ] as const) {
      await expectRefused(await post(path, headers), 'cross_origin');
    }
    // With no Origin at all (an old browser, a form via some redirect), no JSON: refused too.
    await expectRefused(await post(`/api/batches/${dead.id}/replay`, { cookie }), 'json_required');
    // Even with a JSON body: the browser says it comes from elsewhere.
    await expectRefused(
      await post(
        `/api/batches/${dead.id}/replay`,
        { cookie, origin: evil, 'content-type': 'application/json' },
        '{}',
      ),
      'cross_origin',
    );

    expect(await s.db.chargeBatch.findUniqueOrThrow({ where: { id: dead.id } })).toMatchObject({
      status: 'dead',
      deadReason: 'forbidden',
    });
    expect(await s.db.operatorAudit.count()).toBe(0);
    expect(await s.queues.charge.count()).toBe(chargeJobs);
    // Reads are not affected.
    const read = await fetch(`${s.url}/api/batches/${dead.id}`, { headers: { cookie, origin: evil } });
    expect(read.status).toBe(200);
  });

  it('form-encoded, multipart and text/plain POSTs are refused, even naming this origin; JSON from curl works', async () => {
    const dead = await deadBatch();
    for (const [type, body] of [
      ['application/x-www-form-urlencoded', 'a=1'],
      [
        'multipart/form-data; boundary=x',
        '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n',
      ],
      ['text/plain', '{}'],
    ] as const) {
      await expectRefused(
        await post(`/api/batches/${dead.id}/replay`, { cookie, origin: s.url, 'content-type': type }, body),
        'json_required',
      );
    }
    expect((await s.db.chargeBatch.findUniqueOrThrow({ where: { id: dead.id } })).status).toBe('dead');
    // curl: Basic credentials, a JSON body, no browser headers.
    const fromCurl = await post(
      `/api/batches/${dead.id}/replay`,
      {
        authorization: basic(OPERATOR.user, OPERATOR.password),
        'content-type': 'application/json; charset=utf-8',
      },
      '{}',
    );
    expect(fromCurl.status).toBe(200);
    expect(await fromCurl.json()).toEqual({ replayed: [String(dead.id)], skipped: [] });
  });

  it("a sibling subdomain, another port, Origin: null, Sec-Fetch-Site: same-site are refused; the page's own origin works", async () => {
    const dead = await deadBatch();
    const port = new URL(s.url).port;
    const others: Record<string, string>[] = [
      { origin: `http://evil.localhost:${port}` },
      { origin: 'http://127.0.0.1:1' },
      { origin: 'null' },
      { origin: 'not a url' },
      { 'sec-fetch-site': 'same-site' },
    ];
    for (const headers of others) {
      await expectRefused(
        await post(
          `/api/batches/${dead.id}/replay`,
          { cookie, 'content-type': 'application/json', ...headers },
          '{}',
        ),
        'cross_origin',
      );
    }
    expect((await s.db.chargeBatch.findUniqueOrThrow({ where: { id: dead.id } })).status).toBe('dead');
    // What chromium sends with the page's own fetch: this server's Origin, same-origin.
    const fromPage = await post(
      `/api/batches/${dead.id}/replay`,
      { cookie, origin: s.url, 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' },
      '{}',
    );
    expect(fromPage.status).toBe(200);
    expect(await fromPage.json()).toEqual({ replayed: [String(dead.id)], skipped: [] });
  });

  it('sign-in and sign-out refuse another origin; from the page or curl they work', async () => {
    const signIn = (headers: Record<string, string>, body = JSON.stringify(OPERATOR)) =>
      post('/api/session', headers, body);
    const evil = await signIn({ 'content-type': 'application/json', origin: 'https://evil.example' });
    await expectRefused(evil, 'cross_origin');
    expect(evil.headers.get('set-cookie')).toBeNull();
    const form = await signIn(
      { 'content-type': 'application/x-www-form-urlencoded' },
      `user=${OPERATOR.user}&password=${encodeURIComponent(OPERATOR.password)}`,
    );
    await expectRefused(form, 'json_required');
    // Refused before the password is looked at: no attempt counted against the address.
    expect(await s.redis.get(`${s.prefix}:signin-failures:127.0.0.1`)).toBe('0');

    const fromPage = await signIn({ 'content-type': 'application/json', origin: s.url });
    expect(fromPage.status).toBe(200);
    expect(fromPage.headers.get('set-cookie')).toMatch(/^um_session=/);
    expect((await signIn({ 'content-type': 'application/json' })).status).toBe(200);

    const outEvil = await fetch(`${s.url}/api/session`, {
      method: 'DELETE',
      headers: { cookie, origin: 'https://evil.example' },
    });
    await expectRefused(outEvil, 'cross_origin');
    const out = await fetch(`${s.url}/api/session`, { method: 'DELETE', headers: { cookie, origin: s.url } });
    expect(out.status).toBe(204);
  });
});
