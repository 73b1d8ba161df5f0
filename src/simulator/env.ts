// SIM_* environment variables of `npm run sim`, parsed with zod into SimulatorOptions.
import { z } from 'zod';
import { SIMULATOR_DEFAULTS } from './server.js';
import { DEFAULT_SETTINGS } from './settings.js';
import type { SimulatorOptions } from './types.js';
import { webhookUrlSchema } from './webhooks.js';

// An empty variable counts as unset.
const blankToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const int = (min: number, max: number) =>
  z.preprocess(blankToUndefined, z.coerce.number().int().min(min).max(max).optional());
const rate = z.preprocess(blankToUndefined, z.coerce.number().min(0).max(1).optional());
const text = z.preprocess(blankToUndefined, z.string().min(1).optional());

export const simulatorEnvSchema = z.object({
  SIM_PORT: int(0, 65_535),
  SIM_HOST: text,
  SIM_CLIENT_KEY: text,
  SIM_CLIENT_SECRET: text,
  SIM_TOKEN_TTL_SEC: int(1, 31_536_000),
  SIM_QPS: int(0, 10_000_000),
  SIM_LATENCY_MS: int(0, 3_600_000),
  SIM_LATENCY_JITTER_MS: int(0, 3_600_000),
  SIM_BUSY_RATE: rate,
  SIM_HTTP5XX_RATE: rate,
  SIM_RESET_RATE: rate,
  SIM_HANG_RATE: rate,
  SIM_HANG_MS: int(0, 3_600_000),
  SIM_APPLIED_BUT_LOST_RATE: rate,
  SIM_IDEMPOTENCY_WINDOW_SEC: int(1, 315_360_000),
  SIM_TOKEN_OVERLAP_SEC: int(0, 315_360_000),
  // Comma-separated open_ids; blanks between commas are ignored.
  SIM_TEST_WHITELIST: z.preprocess(
    blankToUndefined,
    z
      .string()
      .optional()
      .transform((v) =>
        (v ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''),
      ),
  ),
  SIM_WEBHOOK_URL: z.preprocess(blankToUndefined, webhookUrlSchema.optional()),
  SIM_WEBHOOK_TIMEOUT_MS: int(1, 600_000),
  // Comma-separated ms, one per retry ("0" is one immediate retry); "none" for no retries.
  SIM_WEBHOOK_RETRY_DELAYS_MS: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^\s*(none|\d+(\s*,\s*\d+){0,9})\s*$/, 'must be up to 10 comma-separated integers (ms), or none')
      .optional()
      .transform((v) => {
        if (v === undefined) return undefined;
        if (v.trim() === 'none') return [];
        return v.split(',').map((x) => Number(x.trim()));
      })
      .refine((v) => v === undefined || v.every((n) => n <= 600_000), 'each delay must be at most 600000 ms'),
  ),
});

export class SimulatorEnvError extends Error {
  override name = 'SimulatorEnvError';
  constructor(readonly problems: string[]) {
    super(`invalid simulator configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Parses the SIM_* variables; throws SimulatorEnvError naming every bad one. */
export function simulatorOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): SimulatorOptions {
  const parsed = simulatorEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new SimulatorEnvError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  const faults: SimulatorOptions['faults'] = {};
  const set = (k: keyof NonNullable<SimulatorOptions['faults']>, v: number | undefined) => {
    if (v !== undefined) faults[k] = v;
  };
  set('qps', e.SIM_QPS);
  set('latencyMs', e.SIM_LATENCY_MS);
  set('latencyJitterMs', e.SIM_LATENCY_JITTER_MS);
  set('busyRate', e.SIM_BUSY_RATE);
  set('http5xxRate', e.SIM_HTTP5XX_RATE);
  set('resetRate', e.SIM_RESET_RATE);
  set('hangRate', e.SIM_HANG_RATE);
  set('hangMs', e.SIM_HANG_MS);
  set('appliedButLostRate', e.SIM_APPLIED_BUT_LOST_RATE);
  return {
    port: e.SIM_PORT ?? 8787,
    host: e.SIM_HOST ?? SIMULATOR_DEFAULTS.host,
    clientKey: e.SIM_CLIENT_KEY ?? SIMULATOR_DEFAULTS.clientKey,
    clientSecret: e.SIM_CLIENT_SECRET ?? SIMULATOR_DEFAULTS.clientSecret,
    tokenTtlSec: e.SIM_TOKEN_TTL_SEC ?? SIMULATOR_DEFAULTS.tokenTtlSec,
    idempotencyWindowSec: e.SIM_IDEMPOTENCY_WINDOW_SEC ?? DEFAULT_SETTINGS.idempotencyWindowSec,
    tokenOverlapSec: e.SIM_TOKEN_OVERLAP_SEC ?? DEFAULT_SETTINGS.tokenOverlapSec,
    testWhitelist: e.SIM_TEST_WHITELIST,
    ...(e.SIM_WEBHOOK_URL ? { webhookUrl: e.SIM_WEBHOOK_URL } : {}),
    ...(e.SIM_WEBHOOK_TIMEOUT_MS !== undefined ? { webhookTimeoutMs: e.SIM_WEBHOOK_TIMEOUT_MS } : {}),
    ...(e.SIM_WEBHOOK_RETRY_DELAYS_MS ? { webhookRetryDelaysMs: e.SIM_WEBHOOK_RETRY_DELAYS_MS } : {}),
    faults,
  };
}
