import { describe, expect, it } from 'vitest';
import { EVENT_LIMITS, validateEvent } from '../../src/events/schema.js';

const good = { eventId: 'e-1', openId: 'u1', serviceId: 's1', serviceModeId: 'm1', count: 1 };

describe('usage event schema', () => {
  it('accepts a minimal event and defaults isTestEnv', () => {
    const r = validateEvent(good);
    expect(r).toEqual({ ok: true, event: { ...good, isTestEnv: false } });
  });

  it('normalizes occurredAt from ISO or epoch ms and keeps small attributes', () => {
    const now = Date.now();
    const r = validateEvent({
      ...good,
      occurredAt: now - 1000,
      attributes: { plan: 'pro', n: 1, f: true, x: null },
    });
    expect(r.ok && r.event.occurredAt).toBe(new Date(now - 1000).toISOString());
    const iso = new Date(now - 60_000).toISOString();
    expect(validateEvent({ ...good, occurredAt: iso }).ok).toBe(true);
  });

  const invalid: [string, Record<string, unknown>, RegExp][] = [
    ['missing eventId', { eventId: undefined }, /eventId/],
    ['empty eventId', { eventId: '' }, /eventId: eventId must not be empty/],
    ['long eventId', { eventId: 'x'.repeat(EVENT_LIMITS.idMaxLength + 1) }, /at most 128/],
    ['eventId with space', { eventId: 'a b' }, /printable ASCII/],
    ['numeric openId', { openId: 42 }, /openId must be a string/],
    ['empty serviceId', { serviceId: '' }, /serviceId/],
    ['missing serviceModeId', { serviceModeId: undefined }, /serviceModeId/],
    ['count 0', { count: 0 }, /count must be at least 1/],
    ['count -1', { count: -1 }, /at least 1/],
    ['count 1.5', { count: 1.5 }, /count must be an integer/],
    ['count string', { count: '3' }, /count must be a number/],
    ['count too large', { count: EVENT_LIMITS.maxCount + 1 }, /at most 1000000/],
    ['occurredAt far past', { occurredAt: Date.now() - 31 * 86_400_000 }, /30 days in the past/],
    ['occurredAt future', { occurredAt: Date.now() + 10 * 60_000 }, /5 minutes in the future/],
    ['occurredAt garbage', { occurredAt: 'yesterday' }, /ISO-8601/],
    ['isTestEnv string', { isTestEnv: 'true' }, /isTestEnv must be a boolean/],
    [
      'attributes too many keys',
      { attributes: Object.fromEntries([...Array(17)].map((_, i) => [`k${i}`, i])) },
      /16 keys/,
    ],
    [
      'attributes too big',
      {
        attributes: {
          a: 'x'.repeat(250),
          b: 'x'.repeat(250),
          c: 'x'.repeat(250),
          d: 'x'.repeat(250),
          e: 'x'.repeat(250),
        },
      },
      /1024 bytes/,
    ],
    ['attributes nested', { attributes: { a: { b: 1 } } }, /attribute values/],
    // PostgreSQL cannot store these; one would make the ledger refuse the event's whole job.
    ['U+0000 in an attribute value', { attributes: { a: 'x\u0000y' } }, /^attributes\.a: .*U\+0000/],
    [
      'lone high surrogate in an attribute value',
      { attributes: { a: 'x\ud800' } },
      /^attributes\.a: .*surrogate/,
    ],
    [
      'lone low surrogate in an attribute value',
      { attributes: { a: '\udc00x' } },
      /^attributes\.a: .*surrogate/,
    ],
    [
      'U+0000 in an attribute key',
      { attributes: { 'k\u0000': 1 } },
      /^attributes\.k\\u0000: attribute keys .*U\+0000/,
    ],
    [
      'lone surrogate in an attribute key',
      { attributes: { '\udfff': 'v' } },
      /^attributes\.\\udfff: attribute keys/,
    ],
    ['unknown field (typo)', { open_id: 'u1' }, /open_id|Unrecognized/i],
  ];
  for (const [name, patch, message] of invalid) {
    it(`rejects ${name} with a clear reason`, () => {
      const r = validateEvent({ ...good, ...patch });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors.join('\n')).toMatch(message);
    });
  }

  it('reports every unstorable string of an event, in every string field, escaped; keeps surrogate pairs', () => {
    const r = validateEvent({
      ...good,
      eventId: 'e\u0000',
      openId: 'u\ud800',
      occurredAt: `${new Date().toISOString()}\u0000`,
      attributes: { a: '\u0000', 'b\ud800': 1, ok: 'fine' },
    });
    expect(r).toEqual({
      ok: false,
      errors: [
        'eventId: eventId must be printable ASCII without spaces',
        'openId: openId must be printable ASCII without spaces',
        expect.stringMatching(/^occurredAt: .*ISO-8601/),
        'attributes.a: attribute values must not contain U+0000 or an unpaired surrogate',
        'attributes.b\\ud800: attribute keys must not contain U+0000 or an unpaired surrogate',
      ],
    });
    expect(validateEvent({ ...good, attributes: { 'emoji😀': '😀 ok' } }).ok).toBe(true);
  });

  it('rejects non-objects', () => {
    for (const raw of [null, 42, 'x', [good]]) expect(validateEvent(raw).ok).toBe(false);
  });
});
