// Delivers webhooks like the platform: a signed POST to the configured URL, each
// attempt limited to timeoutMs (connect to the end of the answer); a non-2xx answer,
// a timeout or a connection error is retried after each of retryDelaysMs, with the
// same Msg-Id. Order messages are recorded (bounded) and counted; the URL check is
// one attempt whose answer must echo the challenge. Nothing here ever throws into
// the business call that caused a message.
import { Agent, request } from 'undici';
import type { SimulatorWebhookDelivery, SimulatorWebhooks, WebhookVerifyResult } from './types.js';
import {
  newChallenge,
  newMsgId,
  type OrderMessage,
  orderWebhookBody,
  signWebhook,
  verifyWebhookBody,
} from './webhook-wire.js';

export interface WebhookSenderOptions {
  clientKey: string;
  clientSecret: string;
  timeoutMs: number;
  retryDelaysMs: readonly number[];
}

/** How many messages the state keeps (the latest ones). */
const KEPT = 100;
/** The most of an answer read (the URL check's echo is tiny). */
const MAX_ANSWER_BYTES = 65_536;
const ANSWER_SHOWN = 1000;

interface Attempt {
  ok: boolean;
  status?: number;
  error?: string;
  text: string;
}

function emptyStats(): SimulatorWebhooks {
  return { sent: 0, delivered: 0, failed: 0, attempts: 0, last: [] };
}

export class WebhookSender {
  private stats = emptyStats();
  /** Aborted on clear() and close(): cancels attempts and retry waits under way. */
  private cancel = new AbortController();
  private closed = false;
  /** Its own connection pool, destroyed on close so no socket outlives the simulator. */
  private readonly agent: Agent;

  constructor(private readonly options: WebhookSenderOptions) {
    this.agent = new Agent({ connect: { timeout: options.timeoutMs } });
  }

  /** Sends an order message to `url`; resolves (never rejects) when delivered or given up. */
  order(url: string, message: OrderMessage): Promise<SimulatorWebhookDelivery> {
    const stats = this.stats;
    const record: SimulatorWebhookDelivery = {
      msgId: newMsgId(),
      event: 'service_market_order',
      orderId: message.orderId,
      orderEvent: message.orderEvent,
      openId: message.openId,
      serviceId: message.snapshot.service_id,
      serviceModeId: message.snapshot.service_mode_id,
      remaining: message.snapshot.remain_service_times,
      url,
      attempts: 0,
      status: 'pending',
      at: Date.now(),
    };
    stats.sent++;
    stats.last.push(record);
    if (stats.last.length > KEPT) stats.last.splice(0, stats.last.length - KEPT);
    const raw = orderWebhookBody(this.options.clientKey, message);
    return this.deliver(url, raw, record, stats).catch((err: unknown) => {
      // Not expected; recorded rather than thrown, whatever it was.
      if (record.status === 'pending') {
        record.status = 'failed';
        record.error = String(err);
        stats.failed++;
      }
      return { ...record };
    });
  }

  /** The platform's URL check: one attempt, ok when the answer is 2xx `{"challenge": N}`. */
  async verify(url: string): Promise<WebhookVerifyResult> {
    const challenge = newChallenge();
    const msgId = newMsgId();
    const a = await this.attempt(url, verifyWebhookBody(this.options.clientKey, challenge), msgId, true);
    const result: WebhookVerifyResult = { ok: false, msgId, challenge };
    if (a.status !== undefined) result.httpStatus = a.status;
    if (a.status !== undefined) result.answer = a.text.slice(0, ANSWER_SHOWN);
    if (!a.ok) {
      result.error = a.error ?? 'failed';
      return result;
    }
    let echoed: unknown;
    try {
      echoed = JSON.parse(a.text);
    } catch {
      result.error = 'the answer is not JSON';
      return result;
    }
    const got =
      typeof echoed === 'object' && echoed !== null
        ? (echoed as { challenge?: unknown }).challenge
        : undefined;
    if (got !== challenge) {
      result.error = `the answer does not echo {"challenge":${challenge}}`;
      return result;
    }
    result.ok = true;
    return result;
  }

  /** Counters and copies of the latest records. */
  snapshot(): SimulatorWebhooks {
    return { ...this.stats, last: this.stats.last.map((r) => ({ ...r })) };
  }

  /** Cancels deliveries under way (they end failed, unrecorded) and starts the counters over. */
  clear(): void {
    this.cancel.abort();
    this.cancel = new AbortController();
    this.stats = emptyStats();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cancel.abort();
    await this.agent.destroy();
  }

  private async deliver(
    url: string,
    raw: string,
    record: SimulatorWebhookDelivery,
    stats: SimulatorWebhooks,
  ): Promise<SimulatorWebhookDelivery> {
    const cancel = this.cancel.signal;
    const delays = this.options.retryDelaysMs;
    for (let retry = 0; ; retry++) {
      const a = await this.attempt(url, raw, record.msgId, false, cancel);
      record.attempts++;
      stats.attempts++;
      if (a.status === undefined) delete record.httpStatus;
      else record.httpStatus = a.status;
      if (a.ok) {
        delete record.error;
        record.status = 'delivered';
        stats.delivered++;
        return { ...record };
      }
      record.error = a.error ?? 'failed';
      const delay = delays[retry];
      if (delay === undefined || cancel.aborted) break;
      await wait(delay, cancel);
      if (cancel.aborted) break;
    }
    record.status = 'failed';
    if (cancel.aborted) record.error = 'cancelled: the simulator was reset or closed';
    stats.failed++;
    return { ...record };
  }

  /** One signed POST; never throws. `cancel` aborts it early (reset, close). */
  private async attempt(
    url: string,
    raw: string,
    msgId: string,
    readAnswer: boolean,
    cancel: AbortSignal = this.cancel.signal,
  ): Promise<Attempt> {
    if (this.closed || cancel.aborted) return { ok: false, error: 'cancelled', text: '' };
    const limit = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      limit.abort();
    }, this.options.timeoutMs);
    const onCancel = () => limit.abort();
    cancel.addEventListener('abort', onCancel, { once: true });
    try {
      const res = await request(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-douyin-signature': signWebhook(this.options.clientSecret, raw),
          'msg-id': msgId,
        },
        body: raw,
        // A fresh connection per attempt, as a far-away platform would open.
        reset: true,
        signal: limit.signal,
        dispatcher: this.agent,
      });
      // The answer is read (or drained) within the same time limit.
      let text = '';
      if (readAnswer) text = await readLimited(res.body);
      else await res.body.dump();
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      return { ok, status: res.statusCode, text, ...(ok ? {} : { error: `HTTP ${res.statusCode}` }) };
    } catch (err) {
      if (timedOut) return { ok: false, error: `timeout after ${this.options.timeoutMs} ms`, text: '' };
      if (cancel.aborted || this.closed) return { ok: false, error: 'cancelled', text: '' };
      const e = err as { code?: string; message?: string };
      return { ok: false, error: e.code ?? e.message ?? String(err), text: '' };
    } finally {
      clearTimeout(timer);
      cancel.removeEventListener('abort', onCancel);
    }
  }
}

/** Resolves after ms, or at once when the signal aborts. */
function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** The answer as text, at most MAX_ANSWER_BYTES of it. */
async function readLimited(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= MAX_ANSWER_BYTES) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString('utf8');
}
