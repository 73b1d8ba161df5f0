// Fault settings: defaults and the zod schema that validates every change, whether
// it comes from code (setFaults) or from POST /_sim/faults.
import { z } from 'zod';
import type { SimulatorFaults } from './types.js';

export const DEFAULT_FAULTS: Readonly<SimulatorFaults> = Object.freeze({
  qps: 0,
  latencyMs: 0,
  latencyJitterMs: 0,
  busyRate: 0,
  http5xxRate: 0,
  resetRate: 0,
  hangRate: 0,
  hangMs: 30_000,
  appliedButLostRate: 0,
});

const rate = z.number().min(0).max(1);
const ms = z.number().int().min(0).max(3_600_000);

export const faultsPatchSchema = z.strictObject({
  qps: z.number().int().min(0).max(10_000_000).optional(),
  latencyMs: ms.optional(),
  latencyJitterMs: ms.optional(),
  busyRate: rate.optional(),
  http5xxRate: rate.optional(),
  resetRate: rate.optional(),
  hangRate: rate.optional(),
  hangMs: ms.optional(),
  appliedButLostRate: rate.optional(),
});

export class InvalidFaultsError extends Error {
  override name = 'InvalidFaultsError';
  constructor(readonly problems: string[]) {
    super(`invalid simulator faults: ${problems.join('; ')}`);
  }
}

/** Validates a partial fault setting; throws InvalidFaultsError naming every bad field. */
export function parseFaultsPatch(input: unknown): Partial<SimulatorFaults> {
  const parsed = faultsPatchSchema.safeParse(input);
  if (!parsed.success) {
    throw new InvalidFaultsError(
      parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`),
    );
  }
  // Drop keys given as undefined so they do not overwrite current values.
  const out: Partial<SimulatorFaults> = {};
  for (const [k, v] of Object.entries(parsed.data)) {
    if (v !== undefined) (out as Record<string, number>)[k] = v;
  }
  return out;
}
