// POST /oauth/client_token/: issues client tokens. Never faulted or rate limited.
import type { FastifyInstance } from 'fastify';
import { jsonOrFormBody } from './body.js';
import type { SimulatorCore } from './core.js';

export const TOKEN_PATH = '/oauth/client_token/';

const PARAMETER_ERROR = 10002;
const CLIENT_KEY_UNKNOWN = 10003;
const SECRET_WRONG = 10013;

function error(code: number, description: string) {
  return { data: { error_code: code, description }, message: 'error' };
}

export function registerTokenRoute(app: FastifyInstance, core: SimulatorCore): void {
  app.post(TOKEN_PATH, async (req) => {
    const parsed = jsonOrFormBody(req);
    if (!parsed.ok) return error(PARAMETER_ERROR, `Parameter error: ${parsed.problem}`);
    const b = parsed.value as Record<string, unknown> | null;
    if (typeof b !== 'object' || b === null) return error(PARAMETER_ERROR, 'Parameter error: body');
    for (const k of ['client_key', 'client_secret', 'grant_type']) {
      if (typeof b[k] !== 'string' || b[k] === '') return error(PARAMETER_ERROR, `Parameter error: ${k}`);
    }
    if (b.grant_type !== 'client_credential') {
      return error(PARAMETER_ERROR, 'Parameter error: grant_type must be client_credential');
    }
    if (b.client_key !== core.options.clientKey) return error(CLIENT_KEY_UNKNOWN, 'client_key not found');
    if (b.client_secret !== core.options.clientSecret) {
      return error(SECRET_WRONG, 'client_key or client_secret wrong');
    }
    const { token, expiresIn } = core.tokens.issue();
    return {
      data: { access_token: token, description: '', error_code: 0, expires_in: expiresIn },
      message: 'success',
    };
  });
}
