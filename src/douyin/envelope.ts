// The outcome of one HTTP answer from a business endpoint: a success with its
// logid and `data`, or the DouyinError it carries. HTTP status decides first
// (5xx, 429), then the envelope's error code, classified with the configured table.
// Only an explicit numeric data.error_code 0 is a success: anything else that is not
// an error code is a protocol error (transient: the outcome is unknown, so retry).
import { classifyCode, DouyinError, type ErrorKind } from './errors.js';
import { envelopeSchema, nowToMs } from './schemas.js';

/** What the transport read: the status and the body as JSON (undefined when it was not JSON). */
export interface HttpAnswer {
  status: number;
  body: unknown;
}

export interface EnvelopeResult {
  logid: string;
  httpStatus: number;
  errorCode: 0;
  description: string;
}

/** The parts of an envelope a caller needs, normalized. */
export interface ParsedEnvelope {
  /** data.error_code, else extra.error_code; undefined when neither is there. */
  errorCode: number | undefined;
  subErrorCode: number | undefined;
  description: string;
  subDescription: string | undefined;
  logid: string | undefined;
  /** extra.now in epoch ms (it is seen in seconds and in milliseconds). */
  nowMs: number | undefined;
  /** The `data` object (business fields), if any. */
  data: Record<string, unknown> | undefined;
}

/** Reads the `{data, extra}` envelope; undefined when the body is not one at all. */
export function parseEnvelope(body: unknown): ParsedEnvelope | undefined {
  const r = envelopeSchema.safeParse(body);
  if (!r.success) return undefined;
  const { data, extra } = r.data;
  if (data === undefined && extra === undefined) return undefined;
  return {
    errorCode: data?.error_code ?? extra?.error_code,
    subErrorCode: extra?.sub_error_code,
    description: data?.description || extra?.description || '',
    subDescription: extra?.sub_description || undefined,
    logid: extra?.logid || undefined,
    nowMs: nowToMs(extra?.now),
    data,
  };
}

export type Interpreted =
  | { ok: true; result: EnvelopeResult; data: Record<string, unknown> | undefined }
  | { ok: false; error: DouyinError };

/** Classifies one answer. `errorKinds` extends the default code table. */
export function interpretAnswer(
  answer: HttpAnswer,
  errorKinds: Readonly<Record<number, ErrorKind>> = {},
): Interpreted {
  const env = parseEnvelope(answer.body);
  const httpStatus = answer.status;
  const logid = env?.logid;
  const fail = (kind: ErrorKind, description: string, errorCode?: number) => ({
    ok: false as const,
    error: new DouyinError({
      kind,
      errorCode,
      subErrorCode: env?.subErrorCode,
      description,
      logid,
      httpStatus,
    }),
  });
  if (httpStatus >= 500) return fail('transient', env?.description || `HTTP ${httpStatus}`, env?.errorCode);
  if (httpStatus === 429) return fail('rate_limited', env?.description || 'HTTP 429', env?.errorCode);
  const is2xx = httpStatus >= 200 && httpStatus < 300;
  if (!env) {
    // A 200 that is not the envelope usually comes from a proxy or a truncated answer.
    return fail(
      is2xx ? 'transient' : 'unknown',
      `protocol error: HTTP ${httpStatus} with a body that is not the Douyin envelope`,
    );
  }
  const code = env.errorCode;
  if (code !== undefined && code !== 0) {
    return fail(
      classifyCode(code, errorKinds),
      env.description || env.subDescription || `error ${code}`,
      code,
    );
  }
  if (!is2xx) return fail('unknown', env.description || `HTTP ${httpStatus}`);
  if (typeof env.data?.error_code !== 'number') {
    // No outcome at all: taking it for a success could lose a charge that did not happen.
    return fail('transient', `protocol error: HTTP ${httpStatus} without a numeric data.error_code`);
  }
  return {
    ok: true,
    result: { logid: logid ?? '', httpStatus, errorCode: 0, description: env.description },
    data: env.data,
  };
}
