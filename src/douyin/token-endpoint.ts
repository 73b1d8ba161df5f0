// One request to POST /oauth/client_token/. The body holds the client secret and
// the answer the token, so neither is ever logged or put in an error message.
import { classifyCode, DouyinError, type ErrorKind } from './errors.js';
import { tokenResponseSchema } from './schemas.js';
import type { HttpTransport } from './transport.js';

export const CLIENT_TOKEN_PATH = '/oauth/client_token/';

export interface FetchedToken {
  token: string;
  expiresInSec: number;
}

export interface ClientTokenRequest {
  transport: HttpTransport;
  clientKey: string;
  clientSecret: string;
  timeoutMs: number;
  errorKinds?: Readonly<Record<number, ErrorKind>>;
}

export async function fetchClientToken(r: ClientTokenRequest): Promise<FetchedToken> {
  const answer = await r.transport.request({
    method: 'POST',
    path: CLIENT_TOKEN_PATH,
    body: { client_key: r.clientKey, client_secret: r.clientSecret, grant_type: 'client_credential' },
    signal: AbortSignal.timeout(r.timeoutMs),
  });
  const httpStatus = answer.status;
  if (httpStatus >= 500)
    throw new DouyinError({ kind: 'transient', description: `HTTP ${httpStatus}`, httpStatus });
  if (httpStatus === 429)
    throw new DouyinError({ kind: 'rate_limited', description: 'HTTP 429', httpStatus });
  const parsed = tokenResponseSchema.safeParse(answer.body);
  if (!parsed.success) {
    throw new DouyinError({
      kind: httpStatus >= 200 && httpStatus < 300 ? 'transient' : 'unknown',
      description: `HTTP ${httpStatus}: the token answer is not the expected JSON`,
      httpStatus,
    });
  }
  const { data, extra } = parsed.data;
  const logid = extra?.logid;
  const code = data.error_code ?? 0;
  if (code !== 0) {
    throw new DouyinError({
      kind: classifyCode(code, r.errorKinds),
      errorCode: code,
      description: data.description || `token request refused (${code})`,
      logid,
      httpStatus,
    });
  }
  if (httpStatus < 200 || httpStatus >= 300) {
    throw new DouyinError({ kind: 'unknown', description: `HTTP ${httpStatus}`, logid, httpStatus });
  }
  if (!data.access_token || data.expires_in === undefined || data.expires_in <= 0) {
    throw new DouyinError({
      kind: 'transient',
      description: 'the token answer has no access_token or expires_in',
      logid,
      httpStatus,
    });
  }
  return { token: data.access_token, expiresInSec: data.expires_in };
}
