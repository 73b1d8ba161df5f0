// Strict validation of the business request bodies. Hand-written rather than zod
// because it runs on every call; each failure names the field, as the contract's
// 2100005 description should.

export interface DecrParams {
  count: number;
  is_test_env: boolean;
  open_id: string;
  out_trade_no: string;
  service_id: string;
  service_mode_id: string;
}

export interface InsertPurchaseParams {
  open_id: string;
  out_trade_no: string;
  period_type: number;
  purchase_time: number;
  service_id: string;
  service_mode_id: string;
  duration?: number;
  usage_times?: number;
}

export interface DeletePurchaseParams {
  open_id: string;
  out_trade_no: string;
  service_id: string;
  service_mode_id: string;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string };

const INT32_MAX = 2_147_483_647;
/** purchase_time must look like epoch milliseconds, not seconds. */
const MIN_EPOCH_MS = 1e12;

type Body = Record<string, unknown>;

function isObject(v: unknown): v is Body {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(b: Body, k: string, max = 1024): string | undefined {
  const v = b[k];
  if (typeof v !== 'string' || v.length === 0) return `${k} must be a non-empty string`;
  if (v.length > max) return `${k} must be at most ${max} characters`;
  return undefined;
}

function int(b: Body, k: string, min: number, max: number, optional = false): string | undefined {
  const v = b[k];
  if (optional && (v === undefined || v === null)) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    return `${k} must be an integer ${min}..${max}`;
  }
  return undefined;
}

function first(...problems: (string | undefined)[]): string | undefined {
  for (const p of problems) if (p !== undefined) return p;
  return undefined;
}

export function checkDecr(b: unknown): Checked<DecrParams> {
  if (!isObject(b)) return { ok: false, problem: 'body must be a JSON object' };
  const problem = first(
    int(b, 'count', 1, INT32_MAX),
    typeof b.is_test_env === 'boolean' ? undefined : 'is_test_env must be a boolean',
    str(b, 'open_id'),
    str(b, 'out_trade_no', 64),
    str(b, 'service_id'),
    str(b, 'service_mode_id'),
  );
  if (problem) return { ok: false, problem };
  return {
    ok: true,
    value: {
      count: b.count as number,
      is_test_env: b.is_test_env as boolean,
      open_id: b.open_id as string,
      out_trade_no: b.out_trade_no as string,
      service_id: b.service_id as string,
      service_mode_id: b.service_mode_id as string,
    },
  };
}

export function checkInsertPurchase(b: unknown): Checked<InsertPurchaseParams> {
  if (!isObject(b)) return { ok: false, problem: 'body must be a JSON object' };
  const problem = first(
    str(b, 'open_id'),
    str(b, 'out_trade_no', 64),
    int(b, 'period_type', 0, INT32_MAX),
    int(b, 'purchase_time', MIN_EPOCH_MS, Number.MAX_SAFE_INTEGER),
    str(b, 'service_id'),
    str(b, 'service_mode_id'),
    int(b, 'duration', 0, Number.MAX_SAFE_INTEGER, true),
    int(b, 'usage_times', 0, Number.MAX_SAFE_INTEGER, true),
  );
  if (problem) {
    const hint = problem.startsWith('purchase_time') ? ' (epoch milliseconds)' : '';
    return { ok: false, problem: problem + hint };
  }
  const value: InsertPurchaseParams = {
    open_id: b.open_id as string,
    out_trade_no: b.out_trade_no as string,
    period_type: b.period_type as number,
    purchase_time: b.purchase_time as number,
    service_id: b.service_id as string,
    service_mode_id: b.service_mode_id as string,
  };
  if (typeof b.duration === 'number') value.duration = b.duration;
  if (typeof b.usage_times === 'number') value.usage_times = b.usage_times;
  return { ok: true, value };
}

export function checkDeletePurchase(b: unknown): Checked<DeletePurchaseParams> {
  if (!isObject(b)) return { ok: false, problem: 'body must be a JSON object' };
  const problem = first(
    str(b, 'open_id'),
    str(b, 'out_trade_no', 64),
    str(b, 'service_id'),
    str(b, 'service_mode_id'),
  );
  if (problem) return { ok: false, problem };
  return {
    ok: true,
    value: {
      open_id: b.open_id as string,
      out_trade_no: b.out_trade_no as string,
      service_id: b.service_id as string,
      service_mode_id: b.service_mode_id as string,
    },
  };
}

/** Query of the purchase list: serviceId (the SDK's spelling) or service_id, and open_id. */
export function checkPurchaseListQuery(q: unknown): Checked<{ serviceId: string; openId: string }> {
  const query = isObject(q) ? q : {};
  const serviceId = query.serviceId ?? query.service_id;
  const openId = query.open_id;
  if (typeof serviceId !== 'string' || serviceId === '') {
    return { ok: false, problem: 'serviceId must be a non-empty string' };
  }
  if (typeof openId !== 'string' || openId === '') {
    return { ok: false, problem: 'open_id must be a non-empty string' };
  }
  return { ok: true, value: { serviceId, openId } };
}
