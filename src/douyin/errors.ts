// Douyin error codes, their classification into kinds, and the typed error the
// client throws. The code-to-kind table has documented defaults
// (docs/douyin-client.md, "Errors and their kinds") and can be extended per
// deployment with DOUYIN_ERROR_KINDS, because some real codes (insufficient
// balance, out_trade_no conflict) are not public.

export const ERROR_KINDS = [
  'rate_limited', // 2118110: slow the whole deployment down, retry
  'auth', // token wrong/expired: refresh once, then permanent
  'invalid_request', // 2100005 and request validation: permanent
  'insufficient_balance', // the user's remaining times are below count: policy decides
  'conflict', // out_trade_no replayed with different parameters: permanent
  'forbidden', // application lacks the capability, or a test call by an open_id off the whitelist: permanent
  'not_found', // purchase not found (delete): permanent
  'transient', // system busy, HTTP 5xx: retry with backoff
  'network', // connection refused/reset, socket closed: retry (the call may have applied)
  'timeout', // no answer in time: retry (the call may have applied)
  'unknown', // an unmapped code: permanent until an operator maps it
] as const;

export type ErrorKind = (typeof ERROR_KINDS)[number];

/** Codes from the platform's public docs, and the simulator's own for the cases they do not name. */
export const DOUYIN_CODES = {
  SUCCESS: 0,
  SYSTEM_BUSY: 2100004,
  INVALID_PARAMETER: 2100005,
  TOO_FREQUENT: 2118110,
  TOKEN_WRONG: 28001003,
  TOKEN_EXPIRED: 28001008,
  TOKEN_EXPIRED_ALT: 2190008,
  NO_CAPABILITY: 28001018,
  // Token endpoint (data.error_code).
  TOKEN_PARAMETER_ERROR: 10002,
  TOKEN_CLIENT_KEY_UNKNOWN: 10003,
  TOKEN_CLIENT_SECRET_WRONG: 10013,
  // Defined by this project's simulator (not known from public material; map real ones with DOUYIN_ERROR_KINDS).
  SIM_INSUFFICIENT_TIMES: 2119001,
  SIM_OUT_TRADE_NO_CONFLICT: 2119002,
  SIM_PURCHASE_NOT_FOUND: 2119003,
  SIM_TEST_USER_NOT_WHITELISTED: 2190099,
} as const;

export const defaultErrorKinds: Readonly<Record<number, ErrorKind>> = {
  [DOUYIN_CODES.SYSTEM_BUSY]: 'transient',
  [DOUYIN_CODES.INVALID_PARAMETER]: 'invalid_request',
  [DOUYIN_CODES.TOO_FREQUENT]: 'rate_limited',
  [DOUYIN_CODES.TOKEN_WRONG]: 'auth',
  [DOUYIN_CODES.TOKEN_EXPIRED]: 'auth',
  [DOUYIN_CODES.TOKEN_EXPIRED_ALT]: 'auth',
  [DOUYIN_CODES.NO_CAPABILITY]: 'forbidden',
  [DOUYIN_CODES.TOKEN_PARAMETER_ERROR]: 'invalid_request',
  [DOUYIN_CODES.TOKEN_CLIENT_KEY_UNKNOWN]: 'auth',
  [DOUYIN_CODES.TOKEN_CLIENT_SECRET_WRONG]: 'auth',
  [DOUYIN_CODES.SIM_INSUFFICIENT_TIMES]: 'insufficient_balance',
  [DOUYIN_CODES.SIM_OUT_TRADE_NO_CONFLICT]: 'conflict',
  [DOUYIN_CODES.SIM_PURCHASE_NOT_FOUND]: 'not_found',
  [DOUYIN_CODES.SIM_TEST_USER_NOT_WHITELISTED]: 'forbidden',
};

/** Codes whose answer means the access token must be fetched again. */
export const TOKEN_REFRESH_CODES: ReadonlySet<number> = new Set([
  DOUYIN_CODES.TOKEN_WRONG,
  DOUYIN_CODES.TOKEN_EXPIRED,
  DOUYIN_CODES.TOKEN_EXPIRED_ALT,
]);

/**
 * The "expired" ones among them. The contract says refresh and retry (a wrong token:
 * refresh once, then permanent), so a call still refused as expired after its
 * refreshes fails retryable (see DouyinMarketClient).
 */
export const TOKEN_EXPIRED_CODES: ReadonlySet<number> = new Set([
  DOUYIN_CODES.TOKEN_EXPIRED,
  DOUYIN_CODES.TOKEN_EXPIRED_ALT,
]);

const RETRYABLE: ReadonlySet<ErrorKind> = new Set(['rate_limited', 'transient', 'network', 'timeout']);

export function isRetryableKind(kind: ErrorKind): boolean {
  return RETRYABLE.has(kind);
}

/**
 * Parses DOUYIN_ERROR_KINDS: `code=kind` pairs separated by commas, e.g.
 * `21001234=insufficient_balance,21005678=conflict`. Throws on a malformed entry.
 */
export function parseErrorKinds(spec: string | undefined): Record<number, ErrorKind> {
  const out: Record<number, ErrorKind> = {};
  if (!spec) return out;
  for (const part of spec.split(',')) {
    const entry = part.trim();
    if (!entry) continue;
    const m = /^(-?\d+)\s*[=:]\s*([a-z_]+)$/.exec(entry);
    if (!m || !(ERROR_KINDS as readonly string[]).includes(m[2]!)) {
      throw new Error(
        `DOUYIN_ERROR_KINDS: "${entry}" is not code=kind with kind one of ${ERROR_KINDS.join(', ')}`,
      );
    }
    out[Number(m[1])] = m[2] as ErrorKind;
  }
  return out;
}

/** The kind of a business error code, the configured table first, then the defaults. */
export function classifyCode(code: number, extra: Readonly<Record<number, ErrorKind>> = {}): ErrorKind {
  return extra[code] ?? defaultErrorKinds[code] ?? 'unknown';
}

export interface DouyinErrorDetails {
  kind: ErrorKind;
  errorCode?: number;
  subErrorCode?: number;
  description: string;
  logid?: string;
  httpStatus?: number;
  cause?: unknown;
}

/** Any failure of a Douyin call: a business error in the envelope, HTTP 5xx, network or timeout. */
export class DouyinError extends Error {
  override name = 'DouyinError';
  readonly kind: ErrorKind;
  readonly errorCode: number | undefined;
  readonly subErrorCode: number | undefined;
  readonly description: string;
  readonly logid: string | undefined;
  readonly httpStatus: number | undefined;
  readonly retryable: boolean;

  constructor(d: DouyinErrorDetails) {
    const code = d.errorCode === undefined ? '' : ` ${d.errorCode}`;
    super(`douyin ${d.kind}${code}: ${d.description}${d.logid ? ` (logid ${d.logid})` : ''}`, {
      cause: d.cause,
    });
    this.kind = d.kind;
    this.errorCode = d.errorCode;
    this.subErrorCode = d.subErrorCode;
    this.description = d.description;
    this.logid = d.logid;
    this.httpStatus = d.httpStatus;
    this.retryable = isRetryableKind(d.kind);
  }

  /** The shape printed by the CLI and stored with call attempts. */
  toJSON() {
    return {
      kind: this.kind,
      code: this.errorCode ?? null,
      subCode: this.subErrorCode ?? null,
      description: this.description,
      logid: this.logid ?? null,
      httpStatus: this.httpStatus ?? null,
      retryable: this.retryable,
    };
  }
}

/** A request rejected by validation before anything was sent. */
export class DouyinRequestError extends Error {
  override name = 'DouyinRequestError';
  constructor(readonly problems: string[]) {
    super(`invalid request: ${problems.join('; ')}`);
  }
}
