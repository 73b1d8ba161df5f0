// The platform's webhook wire format: the signed JSON bodies of the order event
// (service_market_order) and of the URL check (verify_webhook), and their ids.
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { newLogid } from './envelope.js';

/** order_snapshot of a service_market_order message. */
export interface OrderSnapshot {
  service_id: string;
  service_mode_id: string;
  /** The same value as service_mode_id (the specification is the mode). */
  specification_id: string;
  /** The user's remaining times for the mode after the change. */
  remain_service_times: number;
  /** Epoch ms. */
  effective_time: number;
  /** Epoch ms, or -1 for permanent. */
  expire_time: number;
}

export interface OrderMessage {
  openId: string;
  orderId: string;
  orderEvent: number;
  snapshot: OrderSnapshot;
}

/** X-Douyin-Signature: lowercase hex SHA-1 of client_secret + the raw body. */
export function signWebhook(clientSecret: string, rawBody: string): string {
  return createHash('sha1')
    .update(clientSecret + rawBody, 'utf8')
    .digest('hex');
}

/** The raw body of an order event; `content` is a JSON string, as on the platform. */
export function orderWebhookBody(clientKey: string, m: OrderMessage): string {
  const content = JSON.stringify({
    order_id: m.orderId,
    order_event: m.orderEvent,
    order_snapshot: m.snapshot,
  });
  return JSON.stringify({
    event: 'service_market_order',
    client_key: clientKey,
    from_user_id: m.openId,
    content,
    log_id: newLogid(),
  });
}

/** The raw body of the URL check; here `content` is an object. */
export function verifyWebhookBody(clientKey: string, challenge: number): string {
  return JSON.stringify({ event: 'verify_webhook', client_key: clientKey, content: { challenge } });
}

/** Msg-Id: 32 hex characters, one per message (its retries reuse it). */
export function newMsgId(): string {
  return randomBytes(16).toString('hex');
}

let orderSeq = 0;

/** A 19-digit order id like the platform's ("7019…"): 7, epoch ms, a 5-digit counter. */
export function newOrderId(now = Date.now()): string {
  orderSeq = (orderSeq + 1) % 100_000;
  return `7${String(now).padStart(13, '0')}${String(orderSeq).padStart(5, '0')}`;
}

/** A positive challenge for the URL check. */
export function newChallenge(): number {
  return randomInt(10_000, 2_147_483_647);
}
