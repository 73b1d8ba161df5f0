// zod schemas for every request (camelCase in, the contract's exact snake_case
// wire body out) and every response. Requests are validated before anything is
// sent; responses are parsed leniently (unknown fields tolerated) because the
// platform's answers are only known from public samples.
import { z } from 'zod';

/** Request limits, documented in docs/douyin-client.md ("Request validation"). */
export const REQUEST_LIMITS = {
  idMaxLength: 128,
  outTradeNoMaxLength: 64,
  outTradeNoPattern: /^[A-Za-z0-9_.-]+$/,
  int32Max: 2_147_483_647,
  /** purchase_time below this is seconds, not milliseconds (1e12 ms is 2001-09-09). */
  minMillisEpoch: 1_000_000_000_000,
  /** ...and above this it is microseconds (1e14 ms is the year 5138). */
  maxMillisEpoch: 100_000_000_000_000,
} as const;

// ---- request inputs (what callers pass) and wire bodies (what is sent)

export interface DecrUserRemainTimesInput {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  count: number;
  outTradeNo: string;
  isTestEnv?: boolean;
}

export interface InsertPurchaseInfoInput {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  outTradeNo: string;
  periodType: number;
  /** Epoch milliseconds. */
  purchaseTime: number;
  duration?: number;
  usageTimes?: number;
}

export interface DeletePurchaseInfoInput {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  outTradeNo: string;
}

export interface PurchaseListInput {
  openId: string;
  serviceId: string;
  /** Test mode (the platform answers remain_service_times 1). Default false. */
  isTestEnv?: boolean;
}

export interface DecrUserRemainTimesBody {
  count: number;
  is_test_env: boolean;
  open_id: string;
  out_trade_no: string;
  service_id: string;
  service_mode_id: string;
}

export interface InsertPurchaseInfoBody {
  open_id: string;
  out_trade_no: string;
  period_type: number;
  purchase_time: number;
  service_id: string;
  service_mode_id: string;
  duration?: number;
  usage_times?: number;
}

export interface DeletePurchaseInfoBody {
  open_id: string;
  out_trade_no: string;
  service_id: string;
  service_mode_id: string;
}

/**
 * The query of GET purchase list, spelled as the official SDK does (the seed's Go SDK
 * sent a camelCase `serviceId`, which the platform does not read).
 */
export interface PurchaseListQuery {
  open_id: string;
  service_id: string;
  is_test_env: 'true' | 'false';
}

const id = (name: string) =>
  z
    .string({ error: `${name} must be a string` })
    .min(1, `${name} must not be empty`)
    .max(REQUEST_LIMITS.idMaxLength, `${name} must be at most ${REQUEST_LIMITS.idMaxLength} characters`)
    .regex(/^\S+$/, `${name} must not contain whitespace`);

const outTradeNo = z
  .string({ error: 'out_trade_no must be a string' })
  .min(1, 'out_trade_no must not be empty')
  .max(
    REQUEST_LIMITS.outTradeNoMaxLength,
    `out_trade_no must be at most ${REQUEST_LIMITS.outTradeNoMaxLength} characters`,
  )
  .regex(REQUEST_LIMITS.outTradeNoPattern, 'out_trade_no may contain only A-Z a-z 0-9 _ . -');

const integer = (name: string) =>
  z.number({ error: `${name} must be a number` }).int(`${name} must be an integer`);

const nonNegative = (name: string) =>
  integer(name)
    .min(0, `${name} must be at least 0`)
    .max(REQUEST_LIMITS.int32Max, `${name} must be at most ${REQUEST_LIMITS.int32Max} (int32)`);

export const decrUserRemainTimesRequest: z.ZodType<DecrUserRemainTimesBody, DecrUserRemainTimesInput> = z
  .object({
    openId: id('open_id'),
    serviceId: id('service_id'),
    serviceModeId: id('service_mode_id'),
    count: integer('count')
      .min(1, 'count must be at least 1')
      .max(REQUEST_LIMITS.int32Max, `count must be at most ${REQUEST_LIMITS.int32Max} (int32)`),
    outTradeNo,
    isTestEnv: z.boolean({ error: 'is_test_env must be a boolean' }).optional(),
  })
  .transform((v) => ({
    count: v.count,
    is_test_env: v.isTestEnv ?? false,
    open_id: v.openId,
    out_trade_no: v.outTradeNo,
    service_id: v.serviceId,
    service_mode_id: v.serviceModeId,
  }));

export const insertPurchaseInfoRequest: z.ZodType<InsertPurchaseInfoBody, InsertPurchaseInfoInput> = z
  .object({
    openId: id('open_id'),
    serviceId: id('service_id'),
    serviceModeId: id('service_mode_id'),
    outTradeNo,
    periodType: nonNegative('period_type'),
    purchaseTime: integer('purchase_time')
      .min(
        REQUEST_LIMITS.minMillisEpoch,
        'purchase_time must be milliseconds since the epoch (this looks like seconds)',
      )
      .max(
        REQUEST_LIMITS.maxMillisEpoch,
        'purchase_time must be milliseconds since the epoch (this looks like microseconds)',
      ),
    duration: nonNegative('duration').optional(),
    usageTimes: nonNegative('usage_times').optional(),
  })
  .transform((v) => {
    const body: InsertPurchaseInfoBody = {
      open_id: v.openId,
      out_trade_no: v.outTradeNo,
      period_type: v.periodType,
      purchase_time: v.purchaseTime,
      service_id: v.serviceId,
      service_mode_id: v.serviceModeId,
    };
    if (v.duration !== undefined) body.duration = v.duration;
    if (v.usageTimes !== undefined) body.usage_times = v.usageTimes;
    return body;
  });

export const deletePurchaseInfoRequest: z.ZodType<DeletePurchaseInfoBody, DeletePurchaseInfoInput> = z
  .object({
    openId: id('open_id'),
    serviceId: id('service_id'),
    serviceModeId: id('service_mode_id'),
    outTradeNo,
  })
  .transform((v) => ({
    open_id: v.openId,
    out_trade_no: v.outTradeNo,
    service_id: v.serviceId,
    service_mode_id: v.serviceModeId,
  }));

export const purchaseListRequest: z.ZodType<PurchaseListQuery, PurchaseListInput> = z
  .object({
    openId: id('open_id'),
    serviceId: id('service_id'),
    isTestEnv: z.boolean({ error: 'is_test_env must be a boolean' }).optional(),
  })
  .transform((v) => ({
    open_id: v.openId,
    service_id: v.serviceId,
    is_test_env: v.isTestEnv ? ('true' as const) : ('false' as const),
  }));

/** One message per problem, naming the wire field. */
export function problemsOf(error: z.ZodError): string[] {
  return error.issues.map((i) => i.message);
}

// ---- responses: lenient, unknown fields kept, malformed optional fields dropped

/** An integer sent as a number or a numeric string; anything else reads as absent. */
const looseInt = z
  .union([
    z.number().int(),
    z
      .string()
      .regex(/^-?\d+$/)
      .transform(Number),
  ])
  .optional()
  .catch(undefined);

const looseString = z
  .union([z.string(), z.number().transform(String)])
  .optional()
  .catch(undefined);

export const envelopeDataSchema = z.looseObject({ error_code: looseInt, description: looseString });

export const envelopeExtraSchema = z.looseObject({
  error_code: looseInt,
  description: looseString,
  sub_error_code: looseInt,
  sub_description: looseString,
  logid: looseString,
  // Seen both in seconds and in milliseconds.
  now: z.number().optional().catch(undefined),
});

/** `{data, extra}`: either part may be missing or malformed (read as absent). */
export const envelopeSchema = z.looseObject({
  data: envelopeDataSchema.optional().catch(undefined),
  extra: envelopeExtraSchema.optional().catch(undefined),
});

export type Envelope = z.output<typeof envelopeSchema>;

export interface PurchaseInfo {
  serviceId: string;
  serviceName?: string;
  serviceStatus?: number;
  specificationType?: number;
  specificationTitle?: string;
  serviceModeId: string;
  remainServiceTimes?: number;
  effectiveTime?: number;
  expireTime?: number;
}

export const purchaseInfoSchema: z.ZodType<PurchaseInfo, unknown> = z
  .looseObject({
    service_id: z.union([z.string(), z.number().transform(String)]),
    service_name: looseString,
    service_status: looseInt,
    specification_type: looseInt,
    specification_title: looseString,
    service_mode_id: z.union([z.string(), z.number().transform(String)]),
    remain_service_times: looseInt,
    effective_time: looseInt,
    expire_time: looseInt,
  })
  .transform((p) => {
    const out: PurchaseInfo = { serviceId: p.service_id, serviceModeId: p.service_mode_id };
    // Absent fields stay absent (not `undefined` keys) so JSON output is clean.
    if (p.service_name !== undefined) out.serviceName = p.service_name;
    if (p.service_status !== undefined) out.serviceStatus = p.service_status;
    if (p.specification_type !== undefined) out.specificationType = p.specification_type;
    if (p.specification_title !== undefined) out.specificationTitle = p.specification_title;
    if (p.remain_service_times !== undefined) out.remainServiceTimes = p.remain_service_times;
    if (p.effective_time !== undefined) out.effectiveTime = p.effective_time;
    if (p.expire_time !== undefined) out.expireTime = p.expire_time;
    return out;
  });

/** `data` of GET purchase list; a missing or null list is an empty one. */
export const purchaseListDataSchema = z.looseObject({
  purchase_info_list: z
    .array(purchaseInfoSchema)
    .nullish()
    .transform((l) => l ?? []),
});

/** The answer of POST /oauth/client_token/. */
export const tokenResponseSchema = z.looseObject({
  data: z.looseObject({
    access_token: z.string().optional().catch(undefined),
    expires_in: looseInt,
    error_code: looseInt,
    description: looseString,
  }),
  extra: z.looseObject({ logid: looseString }).optional().catch(undefined),
  message: looseString,
});

/** `extra.now` normalized to epoch milliseconds (values below 1e11 are seconds). */
export function nowToMs(now: number | undefined): number | undefined {
  if (now === undefined || !Number.isFinite(now)) return undefined;
  return now < 1e11 ? now * 1000 : now;
}
