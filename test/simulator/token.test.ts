// POST /oauth/client_token/ and the access-token check of business calls, including
// the platform's rotation: a new token leaves the previous one an overlap, older ones die.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningSimulator, startSimulator } from '../../src/simulator/index.js';
import { call, code, DECR, decrBody, getToken, KEY, SECRET } from './helpers.js';

const TOKEN = 'oauth/client_token/';

describe('simulator token endpoint', () => {
  let sim: RunningSimulator;
  beforeAll(async () => {
    sim = await startSimulator({ tokenTtlSec: 1 });
    sim.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 1000 });
  });
  afterAll(async () => sim.close());

  it('issues a clt. token with the configured expires_in, in the contract shape', async () => {
    const before = sim.state().tokensIssued;
    const a = await call(sim, TOKEN, {
      body: { client_key: KEY, client_secret: SECRET, grant_type: 'client_credential' },
    });
    expect(a.status).toBe(200);
    expect(a.json).toEqual({
      data: {
        access_token: expect.stringMatching(/^clt\.[0-9a-f]{40}$/),
        description: '',
        error_code: 0,
        expires_in: 1,
      },
      message: 'success',
    });
    expect(sim.state().tokensIssued).toBe(before + 1);
    const other = await getToken(sim);
    expect(other).not.toBe(a.json.data.access_token);
  });

  it('accepts a urlencoded form body too', async () => {
    const a = await call(sim, TOKEN, {
      body: new URLSearchParams({
        client_key: KEY,
        client_secret: SECRET,
        grant_type: 'client_credential',
      }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(a.json.data.error_code).toBe(0);
  });

  it('answers 10013 for a wrong secret and 10003 for an unknown client_key, HTTP 200, message "error"', async () => {
    const issued = sim.state().tokensIssued;
    const wrong = await call(sim, TOKEN, {
      body: { client_key: KEY, client_secret: 'nope', grant_type: 'client_credential' },
    });
    expect(wrong.status).toBe(200);
    expect(wrong.json).toMatchObject({ data: { error_code: 10013 }, message: 'error' });
    expect(wrong.json.data.access_token).toBeUndefined();
    const unknown = await call(sim, TOKEN, {
      body: { client_key: 'other', client_secret: SECRET, grant_type: 'client_credential' },
    });
    expect(unknown.json).toMatchObject({ data: { error_code: 10003 }, message: 'error' });
    expect(sim.state().tokensIssued).toBe(issued);
  });

  it('answers 10002 for missing fields, a wrong grant_type and a body that is not JSON', async () => {
    const bodies: unknown[] = [
      { client_secret: SECRET, grant_type: 'client_credential' },
      { client_key: KEY, grant_type: 'client_credential' },
      { client_key: KEY, client_secret: SECRET },
      { client_key: KEY, client_secret: SECRET, grant_type: 'authorization_code' },
      { client_key: 5, client_secret: SECRET, grant_type: 'client_credential' },
      '{not json',
      '[]',
    ];
    for (const body of bodies) {
      const a = await call(sim, TOKEN, { body });
      expect({ body, code: a.json?.data?.error_code, status: a.status }).toEqual({
        body,
        code: 10002,
        status: 200,
      });
    }
  });

  it('is not subject to faults or the QPS limit', async () => {
    sim.setFaults({ qps: 1, resetRate: 1, busyRate: 1, http5xxRate: 1 });
    try {
      for (let i = 0; i < 3; i++) expect(await getToken(sim)).toMatch(/^clt\./);
    } finally {
      sim.setFaults({ qps: 0, resetRate: 0, busyRate: 0, http5xxRate: 0 });
    }
  });

  it('rejects business calls without a token or with an unknown one: 28001003, nothing applied', async () => {
    const none = await call(sim, DECR, { body: decrBody() });
    expect(code(none)).toBe(28001003);
    expect(none.json.extra.description).toBe('access token wrong');
    const unknown = await call(sim, DECR, { body: decrBody(), token: 'clt.0000' });
    expect(code(unknown)).toBe(28001003);
    expect(sim.state().trades).toHaveLength(0);
  });

  it('lets tokens really expire after expires_in: 28001008, then a new token works', async () => {
    const token = await getToken(sim);
    expect(code(await call(sim, DECR, { body: decrBody(), token }))).toBe(0);
    await sleep(1_100);
    const expired = await call(sim, DECR, { body: decrBody(), token });
    expect(code(expired)).toBe(28001008);
    expect(code(await call(sim, DECR, { body: decrBody(), token: await getToken(sim) }))).toBe(0);
  });

  it('expireTokens() expires every token issued so far, not later ones', async () => {
    const long = await startSimulator();
    try {
      long.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 10 });
      const a = await getToken(long);
      const b = await getToken(long);
      long.expireTokens();
      expect(code(await call(long, DECR, { body: decrBody(), token: a }))).toBe(28001008);
      expect(code(await call(long, DECR, { body: decrBody(), token: b }))).toBe(28001008);
      expect(code(await call(long, DECR, { body: decrBody(), token: await getToken(long) }))).toBe(0);
    } finally {
      await long.close();
    }
  });

  it('a new token leaves the previous one valid for the overlap only, and kills older ones at once', async () => {
    const rot = await startSimulator({ tokenOverlapSec: 1 });
    try {
      rot.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 100 });
      const ok = async (t: string) => code(await call(rot, DECR, { body: decrBody(), token: t }));
      const a = await getToken(rot);
      const b = await getToken(rot);
      expect(await ok(a)).toBe(0); // the previous one, within its overlap
      expect(await ok(b)).toBe(0);
      const c = await getToken(rot);
      // At most the latest two live: a is dead at once, b has its overlap.
      expect(await ok(a)).toBe(28001008);
      expect(await ok(b)).toBe(0);
      expect(await ok(c)).toBe(0);
      await sleep(1_100);
      expect(await ok(b)).toBe(28001008);
      expect(await ok(c)).toBe(0);
      expect(rot.state().calls.tokenRefused).toBe(2);
    } finally {
      await rot.close();
    }
  });

  it('the overlap is 300 s by default and can be changed while running', async () => {
    const rot = await startSimulator();
    try {
      expect(rot.settings().tokenOverlapSec).toBe(300);
      rot.setBalance({ openId: 'u1', serviceId: 's1', serviceModeId: 'm1', remaining: 100 });
      const ok = async (t: string) => code(await call(rot, DECR, { body: decrBody(), token: t }));
      const a = await getToken(rot);
      await getToken(rot);
      expect(await ok(a)).toBe(0);
      rot.setSettings({ tokenOverlapSec: 0 });
      const c = await getToken(rot);
      const d = await getToken(rot);
      // Overlap 0: each new token ends the previous one at once.
      expect(await ok(c)).toBe(28001008);
      expect(await ok(d)).toBe(0);
    } finally {
      await rot.close();
    }
  });
});
