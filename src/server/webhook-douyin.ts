// POST /webhooks/douyin: Douyin's webhook (the order event, the URL check). No API
// key: the signature is the credential, checked in constant time on the raw body
// before anything is parsed or stored. Every signed message is stored raw first
// (once per Msg-Id), answered at once, and processed after (src/orders/), well
// inside the platform's 5 s: an endpoint that answers slowly loses messages and,
// in the end, its subscription.
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Ledger } from '../ledger/pg-ledger.js';
import { storeWebhookMessage } from '../ledger/webhook-messages.js';
import type { Logger } from '../logger.js';
import { webhookMessagesTotal } from '../metrics.js';
import { eventOf, parseWebhookMessage } from '../orders/order-message.js';
import { signatureMatches } from '../orders/signature.js';
import { errorBody } from './errors.js';

/** The platform's messages are small; anything larger is not one of them. */
export const WEBHOOK_BODY_LIMIT = 64 * 1024;

export interface WebhookDeps {
  db: Ledger;
  /** DOUYIN_CLIENT_SECRET; without it every request is refused (503). */
  clientSecret?: string;
  logger: Logger;
  /** Called after a message is stored (the processor's kick). */
  onStored?: () => void;
}

export function registerDouyinWebhook(app: FastifyInstance, d: WebhookDeps): void {
  // In a scope of its own: the raw bytes, as signed, for this route only.
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

    scope.post('/webhooks/douyin', { bodyLimit: WEBHOOK_BODY_LIMIT }, async (req, reply) => {
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const refuse = (status: number, result: string, code: string, message: string) => {
        webhookMessagesTotal.inc({ result });
        req.log.warn({ result, ip: req.ip, bytes: raw.length }, 'douyin webhook refused');
        return reply.code(status).send(errorBody(code, message));
      };
      if (!d.clientSecret)
        return refuse(503, 'not_configured', 'not_configured', 'DOUYIN_CLIENT_SECRET is not set');
      const signature = req.headers['x-douyin-signature'];
      if (typeof signature !== 'string' || signature === '')
        return refuse(401, 'signature_missing', 'unauthorized', 'X-Douyin-Signature is missing');
      if (!signatureMatches(d.clientSecret, raw, signature))
        return refuse(401, 'signature_invalid', 'unauthorized', 'X-Douyin-Signature does not match the body');

      // Signed by Douyin from here on. JSON text cannot hold a raw NUL (nor could the ledger).
      let body: unknown;
      try {
        if (raw.includes(0)) throw new Error('NUL byte');
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        webhookMessagesTotal.inc({ result: 'malformed' });
        return reply.code(400).send(errorBody('malformed_json', 'the body is not JSON'));
      }
      const message = parseWebhookMessage(body);
      const msgIdHeader = req.headers['msg-id'];
      // A long Msg-Id is kept whole as a digest: cutting it could make two messages one.
      const msgId =
        typeof msgIdHeader === 'string' && msgIdHeader !== ''
          ? msgIdHeader.length <= 200 && !msgIdHeader.includes('\0')
            ? msgIdHeader
            : `msg-id-sha1:${createHash('sha1').update(msgIdHeader).digest('hex')}`
          : `body-sha1:${createHash('sha1').update(raw).digest('hex')}`;
      const stored = await storeWebhookMessage(d.db, {
        msgId,
        event: eventOf(body),
        body: raw.toString('utf8'),
      });
      if (message.kind === 'verify') {
        webhookMessagesTotal.inc({ result: 'challenge' });
        return reply.type('application/json').send(JSON.stringify({ challenge: message.challenge }));
      }
      webhookMessagesTotal.inc({ result: stored.duplicate ? 'duplicate' : 'stored' });
      if (!stored.duplicate) d.onStored?.();
      return { ok: true, duplicate: stored.duplicate };
    });
  });
}
