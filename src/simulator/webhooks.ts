// Order webhooks: the delivery defaults, the URL rule, and the zod schema of an
// on-demand send (POST /_sim/webhooks/send, sendWebhook), with their errors.
import { z } from 'zod';
import type { WebhookSendInput } from './types.js';

/** Delivery as the platform documents it: 5 s per attempt, 3 retries. */
export const WEBHOOK_DEFAULTS: Readonly<{ timeoutMs: number; retryDelaysMs: readonly number[] }> =
  Object.freeze({
    timeoutMs: 5000,
    retryDelaysMs: Object.freeze([100, 500, 2000]),
  });

/** order_event values of the contract. */
export const ORDER_EVENTS = {
  PAID: 1,
  ACCEPTED: 2,
  IMPLEMENTATION_CONFIRMED: 3,
  USER_CONFIRMED: 4,
  CANCELLED: 5,
} as const;

/** An absolute http(s) URL: the only place webhooks go. */
export const webhookUrlSchema = z
  .string()
  .max(2048)
  .refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be an absolute http(s) URL');

const MAX_DELAY_MS = 600_000;
export const webhookTimeoutSchema = z.number().int().min(1).max(MAX_DELAY_MS);
export const webhookRetryDelaysSchema = z.array(z.number().int().min(0).max(MAX_DELAY_MS)).max(10);

export const webhookSendSchema = z.strictObject({
  openId: z.string().min(1).max(1024),
  serviceId: z.string().min(1).max(1024),
  serviceModeId: z.string().min(1).max(1024),
  /** Default 1 (paid). */
  orderEvent: z.number().int().min(1).max(5).optional(),
  /** Default: the user's current remaining times for the mode (0 without a purchase). */
  remaining: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  /** Default: the order of the mode's latest purchase (a new one without a purchase). */
  orderId: z.string().min(1).max(128).optional(),
});

export class InvalidWebhookRequestError extends Error {
  override name = 'InvalidWebhookRequestError';
  constructor(readonly problems: string[]) {
    super(`invalid webhook request: ${problems.join('; ')}`);
  }
}

export class NoWebhookUrlError extends Error {
  override name = 'NoWebhookUrlError';
  constructor() {
    super('no webhook URL is set (option webhookUrl, SIM_WEBHOOK_URL or POST /_sim/settings)');
  }
}

/** Validates an on-demand send; throws InvalidWebhookRequestError naming every bad field. */
export function parseWebhookSend(input: unknown): WebhookSendInput {
  const parsed = webhookSendSchema.safeParse(input);
  if (!parsed.success) {
    throw new InvalidWebhookRequestError(
      parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`),
    );
  }
  const out: WebhookSendInput = {
    openId: parsed.data.openId,
    serviceId: parsed.data.serviceId,
    serviceModeId: parsed.data.serviceModeId,
  };
  if (parsed.data.orderEvent !== undefined) out.orderEvent = parsed.data.orderEvent;
  if (parsed.data.remaining !== undefined) out.remaining = parsed.data.remaining;
  if (parsed.data.orderId !== undefined) out.orderId = parsed.data.orderId;
  return out;
}
