// Acting on many dead batches at once (the dashboard's selection): replay or resolve
// a list of ids in one request, each exactly as on its own; refused ones say why.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers.js';

let s: TestServer;
let n = 0;
beforeAll(async () => {
  s = await startTestServer({ label: 'bulk_actions' });
});
afterAll(async () => s?.close());

async function batch(status: 'dead' | 'charged', count: number) {
  n += 1;
  const identity = { openId: `bulk-${n}`, serviceId: 's1', serviceModeId: 'm1', isTestEnv: false };
  const key = await s.db.meterKey.create({ data: identity });
  return s.db.chargeBatch.create({
    data: {
      keyId: key.id,
      outTradeNo: `bulk-out-${n}`,
      count,
      eventCount: 0,
      status,
      chargedCount: status === 'charged' ? count : 0,
      deadReason: status === 'dead' ? 'deadline: retry deadline passed' : null,
      deadlineAt: new Date(),
      finishedAt: new Date(),
    },
  });
}
const post = async (path: string, body: unknown) => {
  const res = await s.api(path, { method: 'POST', body });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};

describe('POST /api/batches/replay and /api/batches/resolve', () => {
  it('replays the selected dead batches with their same out_trade_no and count; a charged one is skipped with its reason', async () => {
    const [a, b, done] = [await batch('dead', 3), await batch('dead', 4), await batch('charged', 5)];
    const r = await post('/api/batches/replay', {
      ids: [String(a.id), String(b.id), String(done.id), String(a.id)],
    });
    expect(r.status).toBe(200);
    expect(r.json.replayed).toEqual([String(a.id), String(b.id)]);
    expect(r.json.skipped).toEqual([{ id: String(done.id), reason: expect.stringMatching(/charged/) }]);
    for (const x of [a, b])
      expect(await s.db.chargeBatch.findUniqueOrThrow({ where: { id: x.id } })).toMatchObject({
        status: 'open',
        outTradeNo: x.outTradeNo,
        count: x.count,
      });
    expect(await s.db.chargeBatch.findUniqueOrThrow({ where: { id: done.id } })).toMatchObject({
      status: 'charged',
    });
    const audit = await s.db.operatorAudit.findMany({ orderBy: { id: 'asc' } });
    expect(audit.filter((x) => x.action === 'batch.replay').map((x) => x.target)).toEqual([
      String(a.id),
      String(b.id),
    ]);
    expect(audit.find((x) => x.action === 'batch.replay-many')?.details).toMatchObject({
      skipped: [{ id: String(done.id) }],
    });
  });

  it('resolves the selected dead batches as charged in one request', async () => {
    const [a, b] = [await batch('dead', 2), await batch('dead', 6)];
    const r = await post('/api/batches/resolve', { ids: [String(a.id), String(b.id)], as: 'charged' });
    expect(r).toMatchObject({ status: 200, json: { resolved: [String(a.id), String(b.id)], skipped: [] } });
    for (const x of [a, b])
      expect(await s.db.chargeBatch.findUniqueOrThrow({ where: { id: x.id } })).toMatchObject({
        status: 'charged',
        resolvedAs: 'charged',
        resolvedBy: 'ops',
      });
  });

  it.each([
    [{ ids: [] }, /at least one batch/],
    [{ ids: Array.from({ length: 501 }, (_, i) => String(i + 1)) }, /at most 500/],
    [{ ids: ['x'] }, /ids\.0: must be a positive integer/],
    [{ ids: ['1'], extra: true }, /extra/],
  ])('refuses %j', async (body, message) => {
    const r = await post('/api/batches/replay', body);
    expect(r.status).toBe(400);
    expect((r.json.error as { message: string }).message).toMatch(message);
  });

  it('refuses a resolve without `as`', async () => {
    const a = await batch('dead', 1);
    const r = await post('/api/batches/resolve', { ids: [String(a.id)] });
    expect(r.status).toBe(400);
    expect((await s.db.chargeBatch.findUniqueOrThrow({ where: { id: a.id } })).status).toBe('dead');
  });
});
