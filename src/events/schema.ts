// The usage event: one zod schema shared by every way in (SDK, NDJSON import, HTTP).
import { z } from 'zod';
import { escapeUnstorable, isStorableText } from './text.js';

/** Limits of an event, documented in docs/events.md ("The event"). */
export const EVENT_LIMITS = {
  idMaxLength: 128,
  maxCount: 1_000_000,
  /** occurredAt may be at most this far in the past... */
  maxPastMs: 30 * 24 * 3600 * 1000,
  /** ...and at most this far in the future (producer clock skew). */
  maxFutureMs: 5 * 60 * 1000,
  attributesMaxKeys: 16,
  attributesMaxBytes: 1024,
} as const;

// Printable ASCII without spaces: safe in logs, URLs and Douyin requests.
const idString = (what: string) =>
  z
    .string({ error: `${what} must be a string` })
    .min(1, `${what} must not be empty`)
    .max(EVENT_LIMITS.idMaxLength, `${what} must be at most ${EVENT_LIMITS.idMaxLength} characters`)
    .regex(/^[\x21-\x7e]+$/, `${what} must be printable ASCII without spaces`);

const occurredAt = z
  .union(
    [
      z.iso.datetime({
        offset: true,
        error: 'occurredAt must be an ISO-8601 date-time with offset or epoch milliseconds',
      }),
      z.number().int().nonnegative(),
    ],
    {
      error: 'occurredAt must be an ISO-8601 date-time with offset or epoch milliseconds',
    },
  )
  .transform((v, ctx) => {
    const ms = typeof v === 'number' ? v : Date.parse(v);
    const now = Date.now();
    if (ms < now - EVENT_LIMITS.maxPastMs) {
      ctx.addIssue({ code: 'custom', message: 'occurredAt is more than 30 days in the past' });
      return z.NEVER;
    }
    if (ms > now + EVENT_LIMITS.maxFutureMs) {
      ctx.addIssue({ code: 'custom', message: 'occurredAt is more than 5 minutes in the future' });
      return z.NEVER;
    }
    return new Date(ms).toISOString();
  });

// Free text must be storable by PostgreSQL (see text.ts): one such string would
// otherwise make the ledger refuse every event of its job.
const storable = (what: string) =>
  z.string().refine(isStorableText, `${what} must not contain U+0000 or an unpaired surrogate`);

const attributes = z
  .record(
    storable('attribute keys').min(1).max(64),
    z.union([storable('attribute values').max(256), z.number(), z.boolean(), z.null()], {
      error: 'attribute values must be strings (≤256), numbers, booleans or null',
    }),
  )
  .refine((a) => Object.keys(a).length <= EVENT_LIMITS.attributesMaxKeys, {
    message: `attributes may have at most ${EVENT_LIMITS.attributesMaxKeys} keys`,
  })
  .refine((a) => Buffer.byteLength(JSON.stringify(a)) <= EVENT_LIMITS.attributesMaxBytes, {
    message: `attributes must serialize to at most ${EVENT_LIMITS.attributesMaxBytes} bytes`,
  });

export const usageEventSchema = z.strictObject({
  eventId: idString('eventId'),
  openId: idString('openId'),
  serviceId: idString('serviceId'),
  serviceModeId: idString('serviceModeId'),
  count: z
    .number({ error: 'count must be a number' })
    .int('count must be an integer')
    .min(1, 'count must be at least 1')
    .max(EVENT_LIMITS.maxCount, `count must be at most ${EVENT_LIMITS.maxCount}`),
  occurredAt: occurredAt.optional(),
  isTestEnv: z.boolean({ error: 'isTestEnv must be a boolean' }).default(false),
  attributes: attributes.optional(),
});

/** What a producer sends. */
export type UsageEventInput = z.input<typeof usageEventSchema>;
/** A validated event (occurredAt normalized to an ISO string, isTestEnv defaulted). */
export type UsageEvent = z.output<typeof usageEventSchema>;

export type EventValidation = { ok: true; event: UsageEvent } | { ok: false; errors: string[] };

/** Validates one event; errors are human-readable, one per problem, prefixed by the field. */
export function validateEvent(raw: unknown): EventValidation {
  const r = usageEventSchema.safeParse(raw);
  if (r.success) return { ok: true, event: r.data };
  return { ok: false, errors: r.error.issues.flatMap((i) => describeIssue(i)) };
}

/** An event refused by validation: where it was, its eventId if it had a string one, and why. */
export interface RejectedEventInput {
  index: number;
  eventId?: string;
  errors: string[];
}

/**
 * Validates a list of events, each on its own (a bad one never takes its valid
 * neighbours down): the one validation loop of the SDK, the HTTP edge and the import.
 */
export function validateEvents(raws: readonly unknown[]): {
  valid: { index: number; event: UsageEvent }[];
  rejected: RejectedEventInput[];
} {
  const valid: { index: number; event: UsageEvent }[] = [];
  const rejected: RejectedEventInput[] = [];
  raws.forEach((raw, index) => {
    const v = validateEvent(raw);
    if (v.ok) valid.push({ index, event: v.event });
    else {
      const id = (raw as { eventId?: unknown } | null)?.eventId;
      rejected.push({ index, ...(typeof id === 'string' ? { eventId: id } : {}), errors: v.errors });
    }
  });
  return { valid, rejected };
}

/** "path: message", escaped (a reason may quote a bad key); a bad attribute key gets its own reasons. */
function describeIssue(i: z.core.$ZodIssue): string[] {
  const path = i.path.map(String).join('.');
  const messages = i.code === 'invalid_key' ? i.issues.map((k) => k.message) : [i.message];
  return messages.map((m) => escapeUnstorable(path ? `${path}: ${m}` : m));
}

/** The batching key of an event, as a string (used for logs and grouping in memory). */
export function batchingKey(
  e: Pick<UsageEvent, 'openId' | 'serviceId' | 'serviceModeId' | 'isTestEnv'>,
): string {
  return JSON.stringify([e.openId, e.serviceId, e.serviceModeId, e.isTestEnv]);
}
