// The meter's webhook signature, in the scheme Stripe made familiar:
//   X-Meter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + raw body)>
// Signing the timestamp with the body lets a receiver refuse replays of an old
// delivery; during a secret rotation a delivery carries one v1 per valid secret.
// verifyWebhook is exported by the SDK (src/index.ts) for receivers.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { MeterNotification } from './event-types.js';

export const SIGNATURE_HEADER = 'X-Meter-Signature';

/** A delivery verifyWebhook refused; `reason` says which check failed. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
  constructor(
    readonly reason:
      | 'no_header'
      | 'malformed_header'
      | 'signature_mismatch'
      | 'stale_timestamp'
      | 'malformed_body',
    message: string,
  ) {
    super(message);
  }
}

function hmac(secret: string, t: number, body: string | Uint8Array): Buffer {
  return createHmac('sha256', secret).update(`${t}.`).update(body).digest();
}

/** The header for a body, signed with each secret (the current one first). */
export function signatureHeader(body: string, secrets: readonly string[], t: number): string {
  return [`t=${t}`, ...secrets.map((s) => `v1=${hmac(s, t, body).toString('hex')}`)].join(',');
}

/**
 * Checks a delivery and returns its notification. Pass the body exactly as received
 * (before any JSON parsing), the X-Meter-Signature header and the endpoint's secret.
 * Throws WebhookVerificationError when the header is missing or malformed, no v1
 * signature matches the secret, or the timestamp is more than `toleranceSec` away
 * from now (a replayed or badly delayed delivery).
 */
export function verifyWebhook<D = Record<string, unknown>>(
  rawBody: string | Uint8Array,
  header: string | string[] | null | undefined,
  secret: string,
  toleranceSec = 300,
  nowSec: number = Math.floor(Date.now() / 1000),
): MeterNotification<D> {
  // A wrong secret or tolerance is the receiver's bug, not a bad delivery: say so plainly.
  if (typeof secret !== 'string' || secret === '')
    throw new TypeError('verifyWebhook: the secret is missing');
  if (!Number.isFinite(toleranceSec) || toleranceSec < 0)
    throw new TypeError('verifyWebhook: toleranceSec must be a finite number of seconds, 0 or more');
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) throw new WebhookVerificationError('no_header', `no ${SIGNATURE_HEADER} header`);
  let t: number | undefined;
  const signatures: Buffer[] = [];
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    const [k, v] = [part.slice(0, eq).trim(), part.slice(eq + 1).trim()];
    if (k === 't' && /^\d{1,12}$/.test(v)) t = Number(v);
    else if (k === 'v1' && /^[0-9a-f]{64}$/i.test(v)) signatures.push(Buffer.from(v, 'hex'));
  }
  if (t === undefined || signatures.length === 0)
    throw new WebhookVerificationError(
      'malformed_header',
      `${SIGNATURE_HEADER} needs t=<unix seconds> and v1=<hex>`,
    );
  const expected = hmac(secret, t, rawBody);
  // Constant time per comparison; every signature is compared.
  let matched = false;
  for (const s of signatures) if (timingSafeEqual(s, expected)) matched = true;
  if (!matched) throw new WebhookVerificationError('signature_mismatch', 'no signature matches the secret');
  if (Math.abs(nowSec - t) > toleranceSec)
    throw new WebhookVerificationError(
      'stale_timestamp',
      `the signature's timestamp is ${nowSec - t} s from now (tolerance ${toleranceSec} s)`,
    );
  try {
    return JSON.parse(typeof rawBody === 'string' ? rawBody : Buffer.from(rawBody).toString('utf8'));
  } catch {
    throw new WebhookVerificationError('malformed_body', 'the body is not JSON');
  }
}
