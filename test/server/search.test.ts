// GET /api/search over a real ledger: each kind of identifier found (a batch by id
// and by out_trade_no, an event batched or pending, an attempt by Douyin's logid, a
// user by openId), a value naming several things, the cap, an unknown value, input
// validation, operator credentials required; and every lookup an index probe (the
// statements planned with sequential scans disabled name the indexes they use).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Prisma } from '../../src/generated/prisma/client.js';
import { formBatch } from '../../src/ledger/batches.js';
import type { Sql } from '../../src/ledger/db.js';
import { SEARCH_LIMIT, search } from '../../src/ledger/search.js';
import { addEvents, testKeyId } from '../support/ledger.js';
import { API_KEY, basic, OPERATOR, startTestServer, type TestServer } from './helpers.js';

let s: TestServer;

const get = async (q: string | undefined, query = '') => {
  const res = await s.api(
    `/api/search${q === undefined ? `?${query}` : `?q=${encodeURIComponent(q)}${query}`}`,
  );
  return { status: res.status, body: await res.json() };
};

const fixture = {
  keyId: 0,
  batchId: '',
  outTradeNo: 'srch-otn-1',
  batchedEvents: [] as string[],
  pendingEvent: '',
  logid: 'SRCH-LOGID-1',
};

beforeAll(async () => {
  s = await startTestServer({ label: 'search' });
  // srch-ann: two events in a batch (with one failed and one successful attempt), then
  // one pending event; a second key of hers in test mode.
  fixture.keyId = await testKeyId(s.db, 'srch-ann');
  fixture.batchedEvents = await addEvents(s.db, fixture.keyId, [2, 3], 'srch');
  const { batch } = await formBatch(s.db, {
    keyId: fixture.keyId,
    outTradeNo: fixture.outTradeNo,
    maxEvents: 10,
    maxCount: 100,
    deadlineSec: 60,
  });
  fixture.batchId = String(batch!.id);
  fixture.pendingEvent = (await addEvents(s.db, fixture.keyId, [1], 'srch-pending'))[0]!;
  const attempt = (attemptNo: number, logid: string | null, outcome: 'success' | 'error') => ({
    batchId: batch!.id,
    attemptNo,
    outTradeNo: fixture.outTradeNo,
    count: 5,
    startedAt: new Date(),
    durationMs: 10,
    outcome,
    errorKind: outcome === 'error' ? 'transient' : null,
    logid,
  });
  await s.db.callAttempt.createMany({
    data: [attempt(1, null, 'error'), attempt(2, fixture.logid, 'success')],
  });
  await s.db.meterKey.create({
    data: { openId: 'srch-ann', serviceId: 's2', serviceModeId: 'm9', isTestEnv: true },
  });
});
afterAll(async () => s?.close());

describe('GET /api/search', () => {
  it('finds a batch by out_trade_no, with what opens it', async () => {
    const { status, body } = await get(fixture.outTradeNo);
    expect(status).toBe(200);
    expect(body).toEqual({
      q: fixture.outTradeNo,
      truncated: false,
      results: [
        {
          kind: 'batch',
          match: 'outTradeNo',
          id: fixture.batchId,
          outTradeNo: fixture.outTradeNo,
          status: 'open',
          count: 5,
          parentId: null,
          createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
          openId: 'srch-ann',
          serviceId: 's1',
          serviceModeId: 'm1',
          isTestEnv: false,
        },
      ],
    });
  });

  it('finds a batch by its id', async () => {
    const { status, body } = await get(fixture.batchId);
    expect(status).toBe(200);
    expect(body.results).toEqual([
      expect.objectContaining({
        kind: 'batch',
        match: 'id',
        id: fixture.batchId,
        outTradeNo: fixture.outTradeNo,
      }),
    ]);
  });

  it('finds an event with its status and the batch that holds it; a pending one has none', async () => {
    const batched = await get(fixture.batchedEvents[1]);
    expect(batched.status).toBe(200);
    expect(batched.body.results).toEqual([
      {
        kind: 'event',
        eventId: fixture.batchedEvents[1],
        seq: expect.stringMatching(/^\d+$/),
        count: 3,
        status: 'batched',
        batchId: fixture.batchId,
        receivedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        openId: 'srch-ann',
        serviceId: 's1',
        serviceModeId: 'm1',
        isTestEnv: false,
      },
    ]);
    const pending = await get(fixture.pendingEvent);
    expect(pending.body.results).toEqual([
      expect.objectContaining({
        kind: 'event',
        eventId: fixture.pendingEvent,
        status: 'pending',
        batchId: null,
      }),
    ]);
  });

  it('finds a call attempt by the logid Douyin gave it, with its batch', async () => {
    const { status, body } = await get(fixture.logid);
    expect(status).toBe(200);
    expect(body.results).toEqual([
      {
        kind: 'attempt',
        id: expect.stringMatching(/^\d+$/),
        logid: fixture.logid,
        batchId: fixture.batchId,
        batchStatus: 'open',
        attemptNo: 2,
        outTradeNo: fixture.outTradeNo,
        outcome: 'success',
        errorKind: null,
        startedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        openId: 'srch-ann',
        serviceId: 's1',
        serviceModeId: 'm1',
        isTestEnv: false,
      },
    ]);
  });

  it('finds a user by openId, with their keys', async () => {
    const { status, body } = await get('srch-ann');
    expect(status).toBe(200);
    expect(body.results).toEqual([
      {
        kind: 'user',
        openId: 'srch-ann',
        moreKeys: false,
        keys: [
          {
            keyId: fixture.keyId,
            openId: 'srch-ann',
            serviceId: 's1',
            serviceModeId: 'm1',
            isTestEnv: false,
          },
          {
            keyId: expect.any(Number),
            openId: 'srch-ann',
            serviceId: 's2',
            serviceModeId: 'm9',
            isTestEnv: true,
          },
        ],
      },
    ]);
  });

  it('trims the value; an unknown one finds nothing; a digit run too large for an id is no error', async () => {
    const padded = await get(`  ${fixture.outTradeNo}\t`);
    expect(padded.status).toBe(200);
    expect(padded.body.q).toBe(fixture.outTradeNo);
    expect(padded.body.results.map((r: { id: string }) => r.id)).toEqual([fixture.batchId]);

    expect(await get('srch-nothing-like-it')).toEqual({
      status: 200,
      body: { q: 'srch-nothing-like-it', results: [], truncated: false },
    });
    // 19 digits above BIGINT's largest: not an id, and not sent to PostgreSQL as one.
    expect(await get('9999999999999999999')).toEqual({
      status: 200,
      body: { q: '9999999999999999999', results: [], truncated: false },
    });
  });

  it('lists everything a value names: an eventId that is also an openId', async () => {
    const keyId = await testKeyId(s.db, 'srch-both');
    await s.db
      .$executeRaw`INSERT INTO usage_event (event_id, key_id, count) VALUES ('srch-both', ${keyId}, 1)`;
    const { body } = await get('srch-both');
    expect(body.results.map((r: { kind: string }) => r.kind)).toEqual(['event', 'user']);
    expect(body.results[0]).toMatchObject({ eventId: 'srch-both', openId: 'srch-both', status: 'pending' });
  });

  it(`answers at most ${SEARCH_LIMIT} results, and says when more matched`, async () => {
    const batchId = BigInt(fixture.batchId);
    await s.db.callAttempt.createMany({
      data: Array.from({ length: SEARCH_LIMIT + 3 }, (_, i) => ({
        batchId,
        attemptNo: 10 + i,
        outTradeNo: fixture.outTradeNo,
        count: 5,
        startedAt: new Date(),
        durationMs: 10,
        outcome: 'error',
        logid: 'SRCH-SAME',
      })),
    });
    const { body } = await get('SRCH-SAME');
    expect(body.truncated).toBe(true);
    expect(body.results).toHaveLength(SEARCH_LIMIT);
    // Newest first.
    expect(body.results[0]).toMatchObject({ kind: 'attempt', attemptNo: 10 + SEARCH_LIMIT + 2 });
    expect(body.results.at(-1)).toMatchObject({ kind: 'attempt', attemptNo: 13 });
  });

  it('400 for a missing, empty, too long or spaced value, or an unknown parameter', async () => {
    const cases: [string, string | undefined, string][] = [
      ['missing', undefined, ''],
      ['empty', '', ''],
      ['blank', '   ', ''],
      ['129 characters', 'x'.repeat(129), ''],
      ['a space inside', 'srch ann', ''],
      ['a control character', 'srch\u0001ann', ''],
      ['not ASCII', 'srch-änn', ''],
      ['twice', 'a', '&q=b'],
      ['an unknown parameter', fixture.outTradeNo, '&limit=5'],
    ];
    for (const [name, q, extra] of cases) {
      const { status, body } = await get(q, extra);
      expect({ name, status, code: body.error?.code }).toEqual({
        name,
        status: 400,
        code: 'invalid_request',
      });
    }
    expect((await get('x'.repeat(128))).status).toBe(200);
  });

  it('401 without operator credentials', async () => {
    const url = `${s.url}/api/search?q=${fixture.outTradeNo}`;
    for (const authorization of [undefined, basic(OPERATOR.user, 'wrong'), `Bearer ${API_KEY}`]) {
      const res = await fetch(url, { headers: authorization ? { authorization } : {} });
      expect({ authorization, status: res.status }).toEqual({ authorization, status: 401 });
    }
  });
});

describe('search statements', () => {
  it('are index probes: planned with sequential scans off, each names its index', async () => {
    // The statements search() sends, captured instead of run.
    const statements: Prisma.Sql[] = [];
    const capture: Sql = {
      $queryRaw: (async (strings: TemplateStringsArray, ...values: unknown[]) => {
        statements.push(Prisma.sql(strings, ...values));
        return [];
      }) as Sql['$queryRaw'],
      $executeRaw: (async () => 0) as Sql['$executeRaw'],
    };
    // A value that is a batch id too, so every lookup runs.
    await search(capture, fixture.batchId);
    expect(statements).toHaveLength(5);

    const c = new pg.Client({ connectionString: s.databaseUrl });
    await c.connect();
    const indexes: string[][] = [];
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL enable_seqscan = off');
      for (const st of statements) {
        const r = await c.query(`EXPLAIN (FORMAT JSON) ${st.text}`, st.values as unknown[]);
        const plan = JSON.stringify(r.rows[0]['QUERY PLAN']);
        expect(plan).not.toContain('"Seq Scan"');
        indexes.push([...plan.matchAll(/"Index Name":"([^"]+)"/g)].map((m) => m[1]!));
      }
      await c.query('ROLLBACK');
    } finally {
      await c.end();
    }
    // Each statement finds the value through the index made for it.
    // usage_event is partitioned by month: each partition's own eventId index
    // (usage_event_YYYY_MM_event_id_idx) serves it.
    const expected = [
      /^charge_batch_pkey$/,
      /^charge_batch_out_trade_no_key$/,
      /^usage_event_\d{4}_\d{2}_event_id_idx$/,
      /^call_attempt_logid_idx$/,
      /^meter_key_identity_key$/,
    ];
    expect(indexes.map((names, i) => names.some((n) => expected[i]!.test(n)))).toEqual(
      expected.map(() => true),
    );
  });
});
