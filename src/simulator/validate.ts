// Strict validation of the business requests, with zod. These schemas are the
// simulator's own reading of the contract, written apart from the client's
// (src/douyin/schemas.ts) on purpose: a client bug must not be mirrored by the
// thing that tests it. Each failure names the field, as the contract's 2100005
// description should. Unknown fields are ignored, as the platform does.
import { z } from 'zod';

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

export interface PurchaseListParams {
  open_id: string;
  service_id: string;
  is_test_env: boolean;
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

const str = (k: string, max = 1024) =>
  z
    .string({ error: `${k} must be a non-empty string` })
    .min(1, `${k} must be a non-empty string`)
    .max(max, `${k} must be at most ${max} characters`);

const int = (k: string, min: number, max: number) =>
  z
    .number({ error: `${k} must be an integer ${min}..${max}` })
    .int(`${k} must be an integer ${min}..${max}`)
    .min(min, `${k} must be an integer ${min}..${max}`)
    .max(max, `${k} must be an integer ${min}..${max}`);

/** Absent or null means "not given". */
const optionalInt = (k: string, min: number, max: number) =>
  int(k, min, max)
    .nullish()
    .transform((v) => v ?? undefined);

const decrSchema = z.object(
  {
    count: int('count', 1, INT32_MAX),
    is_test_env: z.boolean({ error: 'is_test_env must be a boolean' }),
    open_id: str('open_id'),
    out_trade_no: str('out_trade_no', 64),
    service_id: str('service_id'),
    service_mode_id: str('service_mode_id'),
  },
  { error: 'body must be a JSON object' },
);

const insertPurchaseSchema = z.object(
  {
    open_id: str('open_id'),
    out_trade_no: str('out_trade_no', 64),
    period_type: int('period_type', 0, INT32_MAX),
    purchase_time: int('purchase_time', MIN_EPOCH_MS, Number.MAX_SAFE_INTEGER),
    service_id: str('service_id'),
    service_mode_id: str('service_mode_id'),
    duration: optionalInt('duration', 0, Number.MAX_SAFE_INTEGER),
    usage_times: optionalInt('usage_times', 0, Number.MAX_SAFE_INTEGER),
  },
  { error: 'body must be a JSON object' },
);

const deletePurchaseSchema = z.object(
  {
    open_id: str('open_id'),
    out_trade_no: str('out_trade_no', 64),
    service_id: str('service_id'),
    service_mode_id: str('service_mode_id'),
  },
  { error: 'body must be a JSON object' },
);

// Query values are strings: is_test_env is exactly "true" or "false".
const purchaseListQuerySchema = z.object({
  open_id: str('open_id'),
  service_id: str('service_id'),
  is_test_env: z
    .enum(['true', 'false'], { error: 'is_test_env must be true or false' })
    .transform((v) => v === 'true'),
});

/** camelCase spellings of the list's parameters (the seed SDK sent serviceId): refused even next to the right one. */
const CAMEL_SPELLINGS: Readonly<Record<string, string>> = {
  openId: 'open_id',
  serviceId: 'service_id',
  isTestEnv: 'is_test_env',
};

/** The first problem, in the order of the schema's fields (as the old checks reported). */
function check<T>(schema: z.ZodType<T>, input: unknown): Checked<T> {
  const r = schema.safeParse(input);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, problem: r.error.issues[0]?.message ?? 'invalid request' };
}

export function checkDecr(b: unknown): Checked<DecrParams> {
  return check(decrSchema, b);
}

export function checkInsertPurchase(b: unknown): Checked<InsertPurchaseParams> {
  const r = check(insertPurchaseSchema, b);
  if (!r.ok && r.problem.startsWith('purchase_time'))
    return { ok: false, problem: `${r.problem} (epoch milliseconds)` };
  if (!r.ok) return r;
  // Optional fields are left out when not given, so stored purchases stay as sent.
  const { duration, usage_times, ...rest } = r.value;
  const value: InsertPurchaseParams = rest;
  if (duration !== undefined) value.duration = duration;
  if (usage_times !== undefined) value.usage_times = usage_times;
  return { ok: true, value };
}

export function checkDeletePurchase(b: unknown): Checked<DeletePurchaseParams> {
  return check(deletePurchaseSchema, b);
}

/** Query of the purchase list: open_id, service_id and is_test_env, spelled as the official SDK does. */
export function checkPurchaseListQuery(q: unknown): Checked<PurchaseListParams> {
  const query = typeof q === 'object' && q !== null ? (q as Record<string, unknown>) : {};
  for (const [camel, snake] of Object.entries(CAMEL_SPELLINGS)) {
    if (camel in query)
      return { ok: false, problem: `${camel} is not a parameter (the contract spells it ${snake})` };
  }
  return check(purchaseListQuerySchema, query);
}
