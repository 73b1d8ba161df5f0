// zod schemas of the operator API's inputs (query strings, path parameters, bodies).
import { z } from 'zod';

export const BATCH_STATUSES = ['open', 'charged', 'partial', 'insufficient', 'dead', 'voided'] as const;
export const EVENT_STATUSES = ['pending', 'batched', 'charged', 'overage', 'insufficient', 'dead'] as const;

/** An id of ours (BIGINT) as a decimal string. */
export const idParam = z
  .string()
  .regex(/^[1-9][0-9]{0,18}$/, 'must be a positive integer')
  .transform((s) => BigInt(s));

/** A Douyin/producer identifier, the same rule as in events. */
export const identifier = z
  .string()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** A point in time: ISO-8601 or epoch milliseconds. */
export const instant = z
  .string()
  .min(1)
  .transform((s, ctx) => {
    const ms = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
    if (!Number.isFinite(ms)) {
      ctx.addIssue({ code: 'custom', message: 'must be an ISO-8601 date-time or epoch milliseconds' });
      return z.NEVER;
    }
    return new Date(ms);
  });

export const batchListQuery = z.strictObject({
  status: z.enum(BATCH_STATUSES).optional(),
  openId: identifier.optional(),
  since: instant.optional(),
  until: instant.optional(),
  /** The nextCursor of the previous page: batches with a smaller id follow. */
  cursor: idParam.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

export const idPath = z.strictObject({ id: idParam });
export const openIdPath = z.strictObject({ openId: identifier });
export const userQuery = z.strictObject({
  serviceId: identifier.optional(),
  /** The nextCursor of the previous lookup: the services after it (by id) follow. */
  cursor: identifier.optional(),
});

export const timeseriesQuery = z.strictObject({
  minutes: z.coerce.number().int().min(1).max(1440).default(60),
});

export const douyinHealthQuery = z.strictObject({
  windowSec: z.coerce.number().int().min(10).max(86_400).default(300),
});

export const purchaseListQuery = z.strictObject({ openId: identifier, serviceId: identifier });

const purchaseKey = {
  openId: identifier,
  serviceId: identifier,
  serviceModeId: identifier,
  outTradeNo: identifier.max(64, 'must be at most 64 characters'),
};

export const insertPurchaseBody = z.strictObject({
  ...purchaseKey,
  periodType: z.number().int().min(0).max(1_000),
  /** Purchase time, epoch milliseconds. */
  purchaseTime: z.number().int().min(1_000_000_000_000, 'must be epoch milliseconds'),
  /** Bought duration, for time-based specifications. */
  duration: z.number().int().positive().optional(),
  /** Uses bought, for count-based specifications. */
  usageTimes: z.number().int().positive().optional(),
});

export const deletePurchaseBody = z.strictObject(purchaseKey);

export const emptyBody = z.union([z.undefined(), z.null(), z.strictObject({})]);

/** How an operator settles a dead or insufficient batch by hand. */
export const resolveBody = z.strictObject({ as: z.enum(['charged', 'uncharged']) });

/** Batches an operator acts on together (the dashboard's selection): 1 to 500 ids, each once. */
const batchIds = z
  .array(idParam)
  .min(1, 'name at least one batch')
  .max(500, 'at most 500 batches at once')
  .transform((ids) => [...new Map(ids.map((id) => [String(id), id])).values()]);

export const replayManyBody = z.strictObject({ ids: batchIds });
export const resolveManyBody = z.strictObject({ ids: batchIds, as: z.enum(['charged', 'uncharged']) });

export const userEventsQuery = z.strictObject({
  status: z.enum(EVENT_STATUSES).optional(),
  /** The nextCursor of the previous page: older events (smaller seq) follow. */
  cursor: idParam.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

export const ordersQuery = z.strictObject({
  openId: identifier,
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
