// The control endpoints of the webhooks: send one order webhook on demand, and run
// the platform's URL check. Both wait for the outcome and answer it.
import type { FastifyInstance } from 'fastify';
import { controlBody } from './body.js';
import type { SimulatorCore } from './core.js';
import { InvalidWebhookRequestError, NoWebhookUrlError } from './webhooks.js';

function invalid(problems: string[]) {
  return { error: 'invalid request', problems };
}

const NO_URL = { error: 'no webhook URL', problems: [new NoWebhookUrlError().message] };

export function registerWebhookRoutes(app: FastifyInstance, core: SimulatorCore): void {
  // {openId, serviceId, serviceModeId, orderEvent?, remaining?, orderId?} -> the delivery record.
  app.post('/_sim/webhooks/send', async (req, reply) => {
    const body = controlBody(req);
    if (!body.ok) return reply.code(400).send(invalid([body.problem]));
    try {
      return await core.sendWebhook(body.value);
    } catch (err) {
      if (err instanceof InvalidWebhookRequestError) return reply.code(400).send(invalid(err.problems));
      if (err instanceof NoWebhookUrlError) return reply.code(409).send(NO_URL);
      throw err;
    }
  });

  // No body -> {ok, msgId, challenge, httpStatus?, answer?, error?}.
  app.post('/_sim/webhooks/verify', async (_req, reply) => {
    try {
      return await core.verifyWebhook();
    } catch (err) {
      if (err instanceof NoWebhookUrlError) return reply.code(409).send(NO_URL);
      throw err;
    }
  });
}
