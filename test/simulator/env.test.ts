// SIM_* variables into SimulatorOptions: the idempotency window, the token overlap
// and the test whitelist (the rest is covered by worker.test.ts through a child).
import { describe, expect, it } from 'vitest';
import { SimulatorEnvError, simulatorOptionsFromEnv } from '../../src/simulator/env.js';

describe('simulatorOptionsFromEnv', () => {
  it('reads SIM_IDEMPOTENCY_WINDOW_SEC, SIM_TOKEN_OVERLAP_SEC and SIM_TEST_WHITELIST', () => {
    const o = simulatorOptionsFromEnv({
      SIM_IDEMPOTENCY_WINDOW_SEC: '2',
      SIM_TOKEN_OVERLAP_SEC: '0',
      SIM_TEST_WHITELIST: ' tester1, tester2 ,,',
    });
    expect(o).toMatchObject({
      idempotencyWindowSec: 2,
      tokenOverlapSec: 0,
      testWhitelist: ['tester1', 'tester2'],
    });
  });

  it('defaults: one month, 300 s, no whitelist', () => {
    expect(simulatorOptionsFromEnv({})).toMatchObject({
      idempotencyWindowSec: 2_592_000,
      tokenOverlapSec: 300,
      testWhitelist: [],
    });
  });

  it('names every bad one', () => {
    const err = (() => {
      try {
        simulatorOptionsFromEnv({ SIM_IDEMPOTENCY_WINDOW_SEC: '0', SIM_TOKEN_OVERLAP_SEC: 'soon' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(SimulatorEnvError);
    expect((err as SimulatorEnvError).problems.join('\n')).toMatch(
      /SIM_IDEMPOTENCY_WINDOW_SEC[\s\S]*SIM_TOKEN_OVERLAP_SEC/,
    );
  });
});
