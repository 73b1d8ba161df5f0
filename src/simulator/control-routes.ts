// The test-only control endpoint under /_sim/. No auth, never faulted or rate limited.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { controlBody } from './body.js';
import type { SimulatorCore } from './core.js';
import { InvalidFaultsError } from './faults.js';
import { InvalidSettingsError } from './settings.js';

const balanceSchema = z.strictObject({
  openId: z.string().min(1),
  serviceId: z.string().min(1),
  serviceModeId: z.string().min(1),
  remaining: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
const balancesSchema = z.union([balanceSchema, z.array(balanceSchema)]);

function invalid(problems: string[]) {
  return { error: 'invalid request', problems };
}

export function registerControlRoutes(app: FastifyInstance, core: SimulatorCore): void {
  app.get('/_sim/state', async () => core.state());

  app.get('/_sim/faults', async () => core.faults);

  app.post('/_sim/faults', async (req, reply) => {
    const body = controlBody(req);
    if (!body.ok) return reply.code(400).send(invalid([body.problem]));
    try {
      core.setFaults(body.value as never);
    } catch (err) {
      if (err instanceof InvalidFaultsError) return reply.code(400).send(invalid(err.problems));
      throw err;
    }
    return core.faults;
  });

  app.get('/_sim/settings', async () => core.settings);

  app.post('/_sim/settings', async (req, reply) => {
    const body = controlBody(req);
    if (!body.ok) return reply.code(400).send(invalid([body.problem]));
    try {
      core.setSettings(body.value as never);
    } catch (err) {
      if (err instanceof InvalidSettingsError) return reply.code(400).send(invalid(err.problems));
      throw err;
    }
    return core.settings;
  });

  app.post('/_sim/balances', async (req, reply) => {
    const body = controlBody(req);
    if (!body.ok) return reply.code(400).send(invalid([body.problem]));
    const parsed = balancesSchema.safeParse(body.value);
    if (!parsed.success) {
      return reply
        .code(400)
        .send(invalid(parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)));
    }
    const list = Array.isArray(parsed.data) ? parsed.data : [parsed.data];
    for (const b of list) core.setBalance(b);
    return { ok: true, count: list.length };
  });

  app.post('/_sim/tokens/expire', async () => {
    core.tokens.expireAll();
    return { ok: true };
  });

  app.post('/_sim/reset', async () => {
    core.reset();
    return { ok: true };
  });
}
