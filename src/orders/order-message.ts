// What a webhook message of Douyin's says, parsed with zod, tolerantly: the order
// event's `content` is a JSON string, and the key names inside its order_snapshot
// other than remain_service_times / effective_time / expire_time are not
// confirmed by the platform's docs (../shared/douyin-market-api.md, "Webhooks"),
// so the service mode is looked for under the names seen in the wild and the raw
// message is always kept (douyin_webhook_message).
import { z } from 'zod';

/** The URL check sent when the callback URL is saved. */
const verifySchema = z.object({
  event: z.literal('verify_webhook'),
  content: z.object({ challenge: z.union([z.number(), z.string()]) }),
});

// Text the ledger can store (no NUL), at most 200 characters.
const text = z
  .string()
  .min(1)
  .max(200)
  .refine((s) => !s.includes('\0'), 'must not contain NUL');
const id = z.union([text, z.number().int().nonnegative()]).transform(String);
const optionalId = id.optional().catch(undefined);
/** A number, or a string of digits: not null, not "" (z.coerce would make both 0). */
const integer = z.union([
  z.number().int(),
  z
    .string()
    .regex(/^-?\d{1,16}$/)
    .transform(Number),
]);
const millis = integer.optional().catch(undefined);

const orderEnvelope = z.object({
  event: z.literal('service_market_order'),
  from_user_id: text,
  content: z.string(),
  log_id: optionalId,
});

const orderContent = z.object({
  order_id: id,
  order_event: integer.pipe(z.number().int().min(0).max(2_147_483_647)),
  order_snapshot: z.record(z.string(), z.unknown()).optional(),
});

/** Where a snapshot may name the bought specification (the service mode). */
const SERVICE_MODE_KEYS = ['service_mode_id', 'specification_id', 'spec_id', 'sku_id'] as const;

export interface OrderEvent {
  orderId: string;
  /** The buyer (from_user_id). */
  openId: string;
  /** 1 paid, 2 accepted, 3 implementation confirmed, 4 user confirmed, 5 cancelled. */
  orderEvent: number;
  serviceId: string | null;
  serviceModeId: string | null;
  remainServiceTimes: number | null;
  effectiveTime: number | null;
  expireTime: number | null;
  logId: string | null;
}

export type WebhookMessage =
  | { kind: 'verify'; challenge: number | string }
  | { kind: 'order'; order: OrderEvent }
  /** Another event, or an order whose content cannot be read: stored, not used. */
  | { kind: 'other'; event: string; problem?: string };

/** The event name of a parsed body, or 'unknown'. */
export function eventOf(body: unknown): string {
  const e = (body as { event?: unknown } | null)?.event;
  const name = typeof e === 'string' ? e.replaceAll('\0', '').slice(0, 100) : '';
  return name.length > 0 ? name : 'unknown';
}

export function parseWebhookMessage(body: unknown): WebhookMessage {
  const verify = verifySchema.safeParse(body);
  if (verify.success) return { kind: 'verify', challenge: verify.data.content.challenge };
  const event = eventOf(body);
  if (event !== 'service_market_order') return { kind: 'other', event };
  const envelope = orderEnvelope.safeParse(body);
  if (!envelope.success) return { kind: 'other', event, problem: describe(envelope.error) };
  let content: unknown;
  try {
    content = JSON.parse(envelope.data.content);
  } catch {
    return { kind: 'other', event, problem: 'content is not a JSON string' };
  }
  const c = orderContent.safeParse(content);
  if (!c.success) return { kind: 'other', event, problem: `content: ${describe(c.error)}` };
  const snap = c.data.order_snapshot ?? {};
  const str = (v: unknown) => optionalId.parse(v) ?? null;
  const int = (v: unknown) => {
    const n = millis.parse(v);
    return n === undefined ? null : n;
  };
  const remain = int(snap.remain_service_times);
  return {
    kind: 'order',
    order: {
      orderId: c.data.order_id,
      openId: envelope.data.from_user_id,
      orderEvent: c.data.order_event,
      serviceId: str(snap.service_id),
      serviceModeId: str(SERVICE_MODE_KEYS.map((k) => snap[k]).find((v) => v !== undefined && v !== null)),
      // A count the ledger's INTEGER can hold, or nothing.
      remainServiceTimes: remain !== null && remain >= 0 && remain <= 2_147_483_647 ? remain : null,
      effectiveTime: int(snap.effective_time),
      expireTime: int(snap.expire_time),
      logId: envelope.data.log_id ?? null,
    },
  };
}

function describe(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
}
