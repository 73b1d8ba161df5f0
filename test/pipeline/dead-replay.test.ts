// Permanent failures and passed deadlines go dead with a reason; a replay sends
// the same out_trade_no and count again.

import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsById } from '../../src/ledger/events.js';
import { fundUsers, type Pipeline, repoRoot, startPipeline } from '../support/pipeline.js';

describe('dead letters and replay', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline({
      label: 'dead',
      faults: { http5xxRate: 1 },
      env: { METER_RETRY_DEADLINE_SEC: '1', METER_RETRY_BASE_MS: '100' },
    });
    fundUsers(p.sim, ['du1']);
    await p.startWorker();
  });
  afterAll(async () => p.close());

  it('a batch past its deadline is dead; `batches replay` charges it with the same out_trade_no', async () => {
    await p.send([{ eventId: 'd1', openId: 'du1', serviceId: 's1', serviceModeId: 'm1', count: 4 }]);
    const deadline = Date.now() + 20_000;
    let batch = await p.db.chargeBatch.findFirst();
    while (batch?.status !== 'dead' && Date.now() < deadline) {
      await sleep(100);
      batch = await p.db.chargeBatch.findFirst();
    }
    expect(batch).toMatchObject({ status: 'dead', count: 4 });
    // Found past its deadline before a retry, or by a failed call answered after it.
    expect(batch!.deadReason).toMatch(/^deadline: retry deadline (\S+ passed$|passed; last error )/);
    expect(
      await p.db.callAttempt.count({ where: { batchId: batch!.id, outcome: 'error', httpStatus: 503 } }),
    ).toBeGreaterThan(0);
    expect(await eventsById(p.db, ['d1'])).toEqual([
      expect.objectContaining({ status: 'dead', batchId: batch!.id }),
    ]);

    p.sim.setFaults({ http5xxRate: 0 });
    const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const c = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/cli/main.ts', 'batches', 'replay', String(batch!.id)],
        {
          cwd: repoRoot,
          env: { ...process.env, ...p.env },
        },
      );
      let stdout = '';
      c.stdout.on('data', (d) => (stdout += d));
      c.on('exit', (code) => resolve({ code, stdout }));
    });
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ replayed: [String(batch!.id)] });
    await p.waitUntilSettled();
    await p.expectExactTotals();
    expect(p.sim.state().trades).toEqual([
      expect.objectContaining({ outTradeNo: batch!.outTradeNo, count: 4 }),
    ]);
    const audit = await p.db.operatorAudit.findFirstOrThrow();
    expect(audit).toMatchObject({ action: 'batch.replay', target: String(batch!.id) });
    expect(audit.actor).toMatch(/^cli:/);
  });
});
