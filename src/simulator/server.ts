// startSimulator: the Fastify server wiring the token, business, control and webhook
// routes around one SimulatorCore.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { registerBusinessRoutes } from './business-routes.js';
import { registerControlRoutes } from './control-routes.js';
import { SimulatorCore } from './core.js';
import { CODES, envelope } from './envelope.js';
import { registerTokenRoute } from './token-route.js';
import type { RunningSimulator, SimulatorOptions } from './types.js';
import { registerWebhookRoutes } from './webhook-routes.js';
import { webhookRetryDelaysSchema, webhookTimeoutSchema } from './webhooks.js';

export const SIMULATOR_DEFAULTS = {
  port: 0,
  host: '127.0.0.1',
  clientKey: 'sim-client-key',
  clientSecret: 'sim-client-secret',
  tokenTtlSec: 7200,
} as const;

function buildApp(core: SimulatorCore, logger: SimulatorOptions['logger']): FastifyInstance {
  const app = Fastify({
    ...(logger ? { loggerInstance: logger as FastifyBaseLogger } : { logger: false }),
    // Hung requests must not hold close() for hangMs.
    forceCloseConnections: true,
    bodyLimit: 1_048_576,
  });
  // Bodies stay raw strings; each route parses them so bad JSON gets a contract answer.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  registerTokenRoute(app, core);
  registerBusinessRoutes(app, core);
  registerControlRoutes(app, core);
  registerWebhookRoutes(app, core);

  app.setNotFoundHandler(async (req, reply) =>
    reply.code(404).send(envelope(CODES.INVALID_PARAMETER, undefined, `no route ${req.method} ${req.url}`)),
  );
  app.setErrorHandler(async (err: { statusCode?: number; message?: string }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    const code = status < 500 ? CODES.INVALID_PARAMETER : CODES.SYSTEM_BUSY;
    return reply.code(status).send(envelope(code, undefined, err.message));
  });
  return app;
}

export async function startSimulator(options: SimulatorOptions = {}): Promise<RunningSimulator> {
  const tokenTtlSec = options.tokenTtlSec ?? SIMULATOR_DEFAULTS.tokenTtlSec;
  if (!(tokenTtlSec > 0)) throw new Error('startSimulator: tokenTtlSec must be > 0');
  if (
    options.webhookTimeoutMs !== undefined &&
    !webhookTimeoutSchema.safeParse(options.webhookTimeoutMs).success
  ) {
    throw new Error('startSimulator: webhookTimeoutMs must be an integer 1..600000');
  }
  if (
    options.webhookRetryDelaysMs !== undefined &&
    !webhookRetryDelaysSchema.safeParse(options.webhookRetryDelaysMs).success
  ) {
    throw new Error('startSimulator: webhookRetryDelaysMs must be at most 10 integers 0..600000');
  }
  const core = new SimulatorCore({
    clientKey: options.clientKey ?? SIMULATOR_DEFAULTS.clientKey,
    clientSecret: options.clientSecret ?? SIMULATOR_DEFAULTS.clientSecret,
    tokenTtlSec,
    faults: options.faults,
    settings: {
      idempotencyWindowSec: options.idempotencyWindowSec,
      tokenOverlapSec: options.tokenOverlapSec,
      testWhitelist: options.testWhitelist,
      webhookUrl: options.webhookUrl,
    },
    webhookTimeoutMs: options.webhookTimeoutMs,
    webhookRetryDelaysMs: options.webhookRetryDelaysMs ? [...options.webhookRetryDelaysMs] : undefined,
  });
  const app = buildApp(core, options.logger);
  const host = options.host ?? SIMULATOR_DEFAULTS.host;
  await app.listen({ port: options.port ?? SIMULATOR_DEFAULTS.port, host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}/`,
    port,
    state: () => core.state(),
    setFaults: (p) => core.setFaults(p),
    faults: () => ({ ...core.faults }),
    settings: () => ({ ...core.settings, testWhitelist: [...core.settings.testWhitelist] }),
    setSettings: (p) => core.setSettings(p),
    setBalance: (b) => core.setBalance(b),
    expireTokens: () => core.tokens.expireAll(),
    sendWebhook: (input) => core.sendWebhook(input),
    verifyWebhook: () => core.verifyWebhook(),
    reset: () => core.reset(),
    close() {
      closing ??= (async () => {
        core.stopTimers();
        await core.webhooks.close();
        await app.close();
      })();
      return closing;
    },
  };
}
