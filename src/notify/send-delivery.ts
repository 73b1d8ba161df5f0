// One delivery attempt: POSTs a signed notification to an endpoint. 10 s for the
// whole exchange, no redirect followed (a 3xx is a failure: the meter posts only
// where the operator configured), at most 1 KiB of the answer read (the rest is
// ignored; the connection is closed), and only to addresses the guard allows.
import { Agent, request } from 'undici';
import { type AddressGuard, DestinationRefusedError } from './address-guard.js';
import { SIGNATURE_HEADER, signatureHeader } from './signature.js';

export const DELIVERY_TIMEOUT_MS = 10_000;
const ANSWER_READ_LIMIT = 1024;

export interface DeliveryResult {
  ok: boolean;
  /** The endpoint's HTTP status, when it answered. */
  statusCode?: number;
  /** Why it failed (the first KiB of the answer's text for a non-2xx). */
  error?: string;
  durationMs: number;
}

export interface SendOptions {
  url: string;
  body: string;
  /** The current secret first; a previous one still valid after a rotation second. */
  secrets: string[];
  notificationId: string;
  type: string;
  attempt: number;
}

export class DeliverySender {
  private readonly agent: Agent;

  constructor(
    private readonly guard: AddressGuard,
    private readonly timeoutMs = DELIVERY_TIMEOUT_MS,
  ) {
    this.agent = new Agent({
      connect: { lookup: guard.lookup, timeout: timeoutMs },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      // A webhook is an occasional request: don't hold sockets open to receivers.
      keepAliveTimeout: 1_000,
    });
  }

  async send(o: SendOptions): Promise<DeliveryResult> {
    const started = performance.now();
    const done = (r: Omit<DeliveryResult, 'durationMs'>): DeliveryResult => ({
      ...r,
      durationMs: Math.round(performance.now() - started),
    });
    try {
      await this.guard.checkUrl(o.url);
      const res = await request(o.url, {
        method: 'POST',
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.timeoutMs),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'usage-meter-webhooks/1',
          [SIGNATURE_HEADER.toLowerCase()]: signatureHeader(o.body, o.secrets, Math.floor(Date.now() / 1000)),
          'x-meter-event-id': o.notificationId,
          'x-meter-event-type': o.type,
          'x-meter-delivery-attempt': String(o.attempt),
        },
        body: o.body,
      });
      const answer = await readAtMost(res.body, ANSWER_READ_LIMIT);
      if (res.statusCode >= 200 && res.statusCode < 300)
        return done({ ok: true, statusCode: res.statusCode });
      const where =
        res.statusCode >= 300 && res.statusCode < 400
          ? ` (redirect to ${res.headers.location ?? '?'} not followed)`
          : '';
      return done({
        ok: false,
        statusCode: res.statusCode,
        error: `HTTP ${res.statusCode}${where}${answer ? `: ${answer}` : ''}`,
      });
    } catch (err) {
      const e = err as Error & { cause?: Error };
      const refused =
        e instanceof DestinationRefusedError
          ? e
          : e.cause instanceof DestinationRefusedError
            ? e.cause
            : undefined;
      if (refused) return done({ ok: false, error: `refused: ${refused.message}` });
      const message =
        e.name === 'TimeoutError' || e.name === 'AbortError'
          ? `no answer within ${this.timeoutMs} ms`
          : e.message;
      return done({ ok: false, error: message });
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** The first `limit` bytes of an answer as text; the rest is not read. */
async function readAtMost(body: AsyncIterable<Buffer> & { destroy(): void }, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) break;
    }
  } catch {
    // An answer cut short is still an answer: its status decides.
  } finally {
    body.destroy();
  }
  // Control characters (a NUL above all: PostgreSQL text cannot hold one) become spaces.
  return (
    Buffer.concat(chunks)
      .subarray(0, limit)
      .toString('utf8')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it replaces.
      .replace(/[\s\x00-\x1f\x7f]+/g, ' ')
      .trim()
  );
}
