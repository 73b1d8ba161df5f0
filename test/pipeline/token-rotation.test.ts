// Token rotation under the meter: another process with the same client key keeps
// fetching client tokens straight from the platform, and each fetch ends the token
// before last at once (the previous one after a short overlap). The meter's shared
// token dies under it again and again; it must refresh and go on charging, exactly.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fundUsers,
  makeEvents,
  type Pipeline,
  SIM_KEY,
  SIM_SECRET,
  startPipeline,
} from '../support/pipeline.js';

describe('token rotation', () => {
  let p: Pipeline;
  const users = Array.from({ length: 20 }, (_, i) => `tr${i}`);
  beforeAll(async () => {
    p = await startPipeline({ label: 'token-rotation', faults: { latencyMs: 5 } });
    // The platform keeps the previous token 300 s; 1 s here so tokens die while the test runs.
    p.sim.setSettings({ tokenOverlapSec: 1 });
    fundUsers(p.sim, users);
    // Two meter processes sharing the token through Redis.
    await p.startWorker();
    p.spawnWorker();
  });
  afterAll(async () => p.close());

  it('keeps charging every key exactly while another process fetches a new token every 200 ms', async () => {
    let fetched = 0;
    const rotate = async () => {
      const res = await fetch(`${p.sim.url}oauth/client_token/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_key: SIM_KEY,
          client_secret: SIM_SECRET,
          grant_type: 'client_credential',
        }),
      });
      const body = (await res.json()) as { data: { error_code: number } };
      if (body.data.error_code === 0) fetched++;
    };
    const rotator = setInterval(() => void rotate().catch(() => {}), 200);
    try {
      for (let round = 0; round < 8; round++) {
        await p.send(makeEvents(300, users, `rot${round}`));
        await sleep(400);
      }
      // A replacement token that dies before its first use (a starved test machine)
      // holds token fetches off for a minute: charging is late then, never wrong.
      await p.waitUntilSettled(100_000);
    } finally {
      clearInterval(rotator);
    }
    await p.expectExactTotals();

    const state = p.sim.state();
    expect(fetched).toBeGreaterThan(10);
    // The meter's token really died under it (and it fetched new ones) ...
    expect(state.calls.tokenRefused).toBeGreaterThan(0);
    expect(state.tokensIssued).toBeGreaterThan(fetched + 1);
    // ... and no batch was given up on for it.
    const notCharged = await p.db.chargeBatch.count({ where: { status: { not: 'charged' } } });
    expect(notCharged).toBe(0);
    const authErrors = await p.db.callAttempt.count({ where: { errorKind: 'auth' } });
    expect(authErrors).toBe(0);
  }, 120_000);
});
