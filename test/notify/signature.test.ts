import { describe, expect, it } from 'vitest';
import { signatureHeader, verifyWebhook, WebhookVerificationError } from '../../src/notify/signature.js';

const body = JSON.stringify({
  id: 'evt_1',
  type: 'batch.dead',
  createdAt: '2026-11-30T00:00:00.000Z',
  data: { n: 1 },
});
const now = 1_800_000_000;

function refusal(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(WebhookVerificationError);
    return (err as WebhookVerificationError).reason;
  }
}

describe('verifyWebhook', () => {
  it('accepts a body signed with the secret and returns the notification', () => {
    const header = signatureHeader(body, ['whsec_a'], now);
    expect(header).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/);
    expect(verifyWebhook(body, header, 'whsec_a', 300, now)).toEqual(JSON.parse(body));
    expect(verifyWebhook(Buffer.from(body), [header], 'whsec_a', 300, now + 299).id).toBe('evt_1');
  });

  it.each([
    [
      'a wrong secret',
      () => verifyWebhook(body, signatureHeader(body, ['whsec_a'], now), 'whsec_b', 300, now),
      'signature_mismatch',
    ],
    [
      'a changed body',
      () => verifyWebhook(`${body} `, signatureHeader(body, ['whsec_a'], now), 'whsec_a', 300, now),
      'signature_mismatch',
    ],
    [
      'a changed timestamp',
      () =>
        verifyWebhook(
          body,
          signatureHeader(body, ['whsec_a'], now).replace(`t=${now}`, `t=${now + 1}`),
          'whsec_a',
          300,
          now,
        ),
      'signature_mismatch',
    ],
    [
      'a stale timestamp',
      () => verifyWebhook(body, signatureHeader(body, ['whsec_a'], now - 301), 'whsec_a', 300, now),
      'stale_timestamp',
    ],
    [
      'a timestamp from the future',
      () => verifyWebhook(body, signatureHeader(body, ['whsec_a'], now + 301), 'whsec_a', 300, now),
      'stale_timestamp',
    ],
    [
      'the default tolerance of 300 s',
      () =>
        verifyWebhook(
          body,
          signatureHeader(body, ['whsec_a'], Math.floor(Date.now() / 1000) - 400),
          'whsec_a',
        ),
      'stale_timestamp',
    ],
    ['no header', () => verifyWebhook(body, undefined, 'whsec_a'), 'no_header'],
    ['a header without v1', () => verifyWebhook(body, `t=${now}`, 'whsec_a', 300, now), 'malformed_header'],
    [
      'a header without t',
      () => verifyWebhook(body, `v1=${'a'.repeat(64)}`, 'whsec_a', 300, now),
      'malformed_header',
    ],
    ['a short v1', () => verifyWebhook(body, `t=${now},v1=abcd`, 'whsec_a', 300, now), 'malformed_header'],
  ])('refuses %s', (_what, f, reason) => {
    expect(refusal(f)).toBe(reason);
  });

  it('accepts either secret while a rotation overlaps (one v1 per secret)', () => {
    const header = signatureHeader(body, ['whsec_new', 'whsec_old'], now);
    expect(header.split(',v1=')).toHaveLength(3);
    expect(verifyWebhook(body, header, 'whsec_new', 300, now).id).toBe('evt_1');
    expect(verifyWebhook(body, header, 'whsec_old', 300, now).id).toBe('evt_1');
    expect(refusal(() => verifyWebhook(body, header, 'whsec_other', 300, now))).toBe('signature_mismatch');
  });

  it('refuses a signed body that is not JSON', () => {
    expect(refusal(() => verifyWebhook('nope', signatureHeader('nope', ['s'], now), 's', 300, now))).toBe(
      'malformed_body',
    );
  });
});
