// Settings (the idempotency window, the token overlap, the test whitelist, the
// webhook URL): defaults and the zod schema that validates every change, from
// startSimulator's options, setSettings or POST /_sim/settings.
import { z } from 'zod';
import type { SimulatorSettings, SimulatorSettingsPatch } from './types.js';
import { webhookUrlSchema } from './webhooks.js';

export const DEFAULT_SETTINGS: Readonly<SimulatorSettings> = Object.freeze({
  idempotencyWindowSec: 2_592_000,
  tokenOverlapSec: 300,
  testWhitelist: [],
});

const TEN_YEARS_SEC = 315_360_000;

export const settingsPatchSchema = z.strictObject({
  // Fractions allowed, so tests can use a window of a few hundred ms.
  idempotencyWindowSec: z.number().positive().max(TEN_YEARS_SEC).optional(),
  tokenOverlapSec: z.number().min(0).max(TEN_YEARS_SEC).optional(),
  testWhitelist: z.array(z.string().min(1).max(1024)).max(10_000).optional(),
  // null turns webhooks off.
  webhookUrl: webhookUrlSchema.nullable().optional(),
});

export class InvalidSettingsError extends Error {
  override name = 'InvalidSettingsError';
  constructor(readonly problems: string[]) {
    super(`invalid simulator settings: ${problems.join('; ')}`);
  }
}

/** Validates a partial settings change; throws InvalidSettingsError naming every bad field. */
export function parseSettingsPatch(input: unknown): SimulatorSettingsPatch {
  const parsed = settingsPatchSchema.safeParse(input);
  if (!parsed.success) {
    throw new InvalidSettingsError(
      parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`),
    );
  }
  const out: SimulatorSettingsPatch = {};
  const { idempotencyWindowSec, tokenOverlapSec, testWhitelist, webhookUrl } = parsed.data;
  if (idempotencyWindowSec !== undefined) out.idempotencyWindowSec = idempotencyWindowSec;
  if (tokenOverlapSec !== undefined) out.tokenOverlapSec = tokenOverlapSec;
  if (testWhitelist !== undefined) out.testWhitelist = [...new Set(testWhitelist)];
  if (webhookUrl !== undefined) out.webhookUrl = webhookUrl;
  return out;
}

/** Settings with a patch applied; `webhookUrl: null` removes the URL (the key is left out, not undefined). */
export function applySettingsPatch(
  settings: SimulatorSettings,
  patch: SimulatorSettingsPatch,
): SimulatorSettings {
  const { webhookUrl, ...rest } = { ...settings, ...patch };
  return webhookUrl == null ? rest : { ...rest, webhookUrl };
}
