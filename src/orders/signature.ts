// The signature of Douyin's webhook: X-Douyin-Signature is the hex SHA-1 of the
// application's client_secret followed by the raw request body. Compared in
// constant time, so a forger learns nothing from how fast a guess is refused.
import { createHash, timingSafeEqual } from 'node:crypto';

/** The signature Douyin puts on this body (lowercase hex). */
export function webhookSignature(clientSecret: string, rawBody: Buffer): string {
  return createHash('sha1').update(clientSecret, 'utf8').update(rawBody).digest('hex');
}

/** Whether `header` is the body's signature (any hex case); false for anything malformed. */
export function signatureMatches(clientSecret: string, rawBody: Buffer, header: string): boolean {
  if (!/^[0-9a-fA-F]{40}$/.test(header)) return false;
  const expected = createHash('sha1').update(clientSecret, 'utf8').update(rawBody).digest();
  return timingSafeEqual(expected, Buffer.from(header, 'hex'));
}
