// The Douyin response envelope and its logid. Every answer gets a fresh logid.
import { randomBytes } from 'node:crypto';

export const CODES = {
  SUCCESS: 0,
  SYSTEM_BUSY: 2100004,
  INVALID_PARAMETER: 2100005,
  TOO_FREQUENT: 2118110,
  TOKEN_WRONG: 28001003,
  TOKEN_EXPIRED: 28001008,
  INSUFFICIENT_TIMES: 2119001,
  OUT_TRADE_NO_CONFLICT: 2119002,
  PURCHASE_NOT_FOUND: 2119003,
  // The platform's code for a test-mode call by an open_id off the whitelist is not public.
  TEST_USER_NOT_WHITELISTED: 2190099,
} as const;

export const DESCRIPTIONS: Readonly<Record<number, string>> = {
  [CODES.SUCCESS]: '',
  [CODES.SYSTEM_BUSY]: '系统繁忙，请稍后再试 (system busy)',
  [CODES.INVALID_PARAMETER]: '参数不合法',
  [CODES.TOO_FREQUENT]: '请求太频繁 (request too frequent)',
  [CODES.TOKEN_WRONG]: 'access token wrong',
  [CODES.TOKEN_EXPIRED]: 'access token expired',
  [CODES.INSUFFICIENT_TIMES]: 'remaining times insufficient',
  [CODES.OUT_TRADE_NO_CONFLICT]: 'out_trade_no already used with different parameters',
  [CODES.PURCHASE_NOT_FOUND]: 'purchase not found',
  [CODES.TEST_USER_NOT_WHITELISTED]: 'open_id is not on the test whitelist (is_test_env)',
};

// logid: 20 digits of Beijing time (yyyyMMddHHmmssSSS + 3-digit sequence) then 14
// uppercase hex (6 of this instance, 8 of a counter), so ids are unique per instance.
const instance = randomBytes(3).toString('hex').toUpperCase();
let counter = 0;
let cachedSecond = -1;
let cachedPrefix = '';
const BEIJING_OFFSET_MS = 8 * 3_600_000;

function secondPrefix(nowMs: number): string {
  const second = Math.floor(nowMs / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    // toISOString of the shifted time: 2023-05-05T16:59:27.000Z -> 20230505165927
    cachedPrefix = new Date(second * 1000 + BEIJING_OFFSET_MS).toISOString().slice(0, 19).replace(/\D/g, '');
  }
  return cachedPrefix;
}

export function newLogid(nowMs = Date.now()): string {
  counter = (counter + 1) >>> 0;
  const millis = String(nowMs % 1000).padStart(3, '0');
  const seq = String(counter % 1000).padStart(3, '0');
  return `${secondPrefix(nowMs)}${millis}${seq}${instance}${counter.toString(16).toUpperCase().padStart(8, '0')}`;
}

export interface Envelope {
  data: { error_code: number; description: string; [k: string]: unknown };
  extra: {
    error_code: number;
    description: string;
    sub_error_code: number;
    sub_description: string;
    logid: string;
    now: number;
  };
}

/** A business answer. `detail` is appended to the code's description (e.g. the bad field). */
export function envelope(code: number, fields?: Record<string, unknown>, detail?: string): Envelope {
  const base = DESCRIPTIONS[code] ?? '';
  const description = detail ? (base ? `${base}: ${detail}` : detail) : base;
  const nowMs = Date.now();
  return {
    data: { error_code: code, description, ...fields },
    extra: {
      error_code: code,
      description,
      sub_error_code: 0,
      sub_description: '',
      logid: newLogid(nowMs),
      now: Math.floor(nowMs / 1000),
    },
  };
}
