// The Douyin methods the operator API uses (DouyinMarketClient implements them),
// and how their failures are shown: a Douyin problem is a 502 naming the kind,
// code and logid, never a bare 500.
import { DouyinError, DouyinRequestError } from '../douyin/errors.js';
import type { TokenStatus } from '../douyin/token.js';
import { HttpError } from './errors.js';

export interface PurchaseKeyInput {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  outTradeNo: string;
}

export interface InsertPurchaseInput extends PurchaseKeyInput {
  periodType: number;
  /** Epoch milliseconds. */
  purchaseTime: number;
  duration?: number;
  usageTimes?: number;
}

type CallOpts = { signal?: AbortSignal };

export interface OperatorDouyinApi {
  getUserServicePurchaseList(
    input: { openId: string; serviceId: string; isTestEnv?: boolean },
    opts?: CallOpts,
  ): Promise<{ purchaseInfoList: object[] }>;
  insertPurchaseInfo(input: InsertPurchaseInput, opts?: CallOpts): Promise<object>;
  deletePurchaseInfo(input: PurchaseKeyInput, opts?: CallOpts): Promise<object>;
  /** The shared token's state, for the health view (optional). */
  tokenStatus?(): Promise<TokenStatus>;
}

export interface DouyinFailure {
  kind: string;
  code: number | null;
  message: string;
  logid: string | null;
}

/** A Douyin call's failure as JSON (for fields that show an error instead of failing the request). */
export function douyinFailure(err: unknown): DouyinFailure {
  if (err instanceof DouyinError) {
    return { kind: err.kind, code: err.errorCode ?? null, message: err.message, logid: err.logid ?? null };
  }
  if (err instanceof DouyinRequestError)
    return { kind: 'invalid_request', code: null, message: err.message, logid: null };
  return { kind: 'unknown', code: null, message: (err as Error)?.message ?? String(err), logid: null };
}

/**
 * The HTTP error for a failed Douyin call made on an operator's behalf: 400 for a
 * request the client refused, 502 for Douyin's (or the network's) failure. Anything
 * else is a bug of ours and stays itself (a logged 500).
 */
export function douyinHttpError(err: unknown): unknown {
  if (err instanceof DouyinRequestError) return new HttpError(400, 'invalid_request', err.message);
  if (err instanceof DouyinError) return new HttpError(502, 'douyin_error', err.message, douyinFailure(err));
  return err;
}

export function douyinRequired(api: OperatorDouyinApi | undefined): OperatorDouyinApi {
  if (!api) throw new HttpError(503, 'douyin_unavailable', 'no Douyin client is configured on this server');
  return api;
}

/** Abort signal for one operator-initiated call. */
export const douyinCallTimeoutMs = 5_000;
