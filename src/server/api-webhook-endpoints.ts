// /api/webhook-endpoints: operators manage the endpoints the meter's webhooks go to
// (docs/notifications.md), see each one's delivery log and redeliver. The signing
// secret is returned once, when an endpoint is made or its secret rotated, and is
// never logged. Each change writes an operator_audit row. Cross-origin requests
// never get here (origin.ts).
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Prisma, PrismaClient } from '../generated/prisma/client.js';
import {
  createEndpoint,
  deleteEndpoint,
  getEndpoint,
  listDeliveries,
  listEndpoints,
  markForRedelivery,
  rotateEndpointSecret,
  updateEndpoint,
} from '../ledger/webhook-endpoints.js';
import type { Logger } from '../logger.js';
import { AddressGuard, DestinationRefusedError } from '../notify/address-guard.js';
import { DEFAULT_NOTIFICATION_TYPES, NOTIFICATION_TYPES } from '../notify/event-types.js';
import { type DeliveryJobData, enqueueDeliveries } from '../notify/queue.js';
import { HttpError, parseOr400 } from './errors.js';
import { emptyBody, idParam } from './params.js';

export interface WebhookEndpointDeps {
  db: PrismaClient;
  notifyQueue: Queue<DeliveryJobData>;
  /** NOTIFY_ALLOWED_HOSTS: a URL is refused here already when its address would be at delivery. */
  allowedHosts: string[];
  logger: Logger;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
const NO_CONTROL_CHARACTERS = /^[^\x00-\x1f\x7f]*$/;
/** Stored as the URL parser writes it (what the delivery will request). */
const url = z
  .string()
  .max(2048, 'must be at most 2048 characters')
  .regex(NO_CONTROL_CHARACTERS, 'must not contain control characters')
  .refine((s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol), 'must be an http or https URL')
  .transform((s) => new URL(s).href);
const eventTypes = z
  .array(z.enum(NOTIFICATION_TYPES))
  .min(1, 'name at least one event type')
  .transform((t) => [...new Set(t)]);
const description = z
  .string()
  .max(500, 'must be at most 500 characters')
  .regex(NO_CONTROL_CHARACTERS, 'must not contain control characters');
const threshold = z.number().int().min(0).max(2_147_483_647);

export const createBody = z.strictObject({
  url,
  eventTypes: eventTypes.default([...DEFAULT_NOTIFICATION_TYPES]),
  description: description.default(''),
  lowBalanceThreshold: threshold.default(10),
});
export const updateBody = z
  .strictObject({
    url: url.optional(),
    eventTypes: eventTypes.optional(),
    description: description.optional(),
    lowBalanceThreshold: threshold.optional(),
    enabled: z.boolean().optional(),
  })
  .refine((b) => Object.keys(b).length > 0, 'give at least one field to change');
export const rotateBody = z
  .strictObject({
    /** How long the old secret stays valid (deliveries carry both signatures). 0: revoked now. */
    keepOldForSec: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400)
      .default(0),
  })
  .default({ keepOldForSec: 0 });
export const endpointPath = z.strictObject({ id: idParam });
export const deliveryPath = z.strictObject({ id: idParam, deliveryId: idParam });
export const deliveriesQuery = z.strictObject({
  status: z.enum(['pending', 'delivered', 'failed', 'cancelled']).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: idParam.optional(),
});

const newSecret = () => `whsec_${randomBytes(32).toString('base64url')}`;

export function registerWebhookEndpointRoutes(api: FastifyInstance, d: WebhookEndpointDeps): void {
  const { db } = d;
  const guard = new AddressGuard(d.allowedHosts);
  const actorOf = (req: FastifyRequest) => req.operator ?? 'unknown';
  const audit = async (
    req: FastifyRequest,
    action: string,
    target: string,
    details: Prisma.InputJsonValue,
  ) => {
    const actor = actorOf(req);
    await db.operatorAudit.create({ data: { actor, action, target, details } });
    d.logger.info({ actor, action, target, details }, 'operator action');
  };
  const notFound = (id: bigint) => new HttpError(404, 'not_found', `no webhook endpoint ${id}`);

  /** Refuses a URL whose address the delivery would refuse; a name that does not resolve yet is accepted. */
  const checkDestination = async (target: string) => {
    try {
      await guard.checkUrl(target);
      const host = new URL(target).hostname.replace(/^\[|\]$/g, '');
      const addresses = await lookup(host, { all: true }).catch(() => []);
      for (const a of addresses) {
        const why = await guard.refusal(a.address);
        if (why) throw new DestinationRefusedError(`${host}: ${why}`);
      }
    } catch (err) {
      if (err instanceof DestinationRefusedError)
        throw new HttpError(400, 'destination_refused', `webhooks may not go there: ${err.message}`);
      throw err;
    }
  };

  api.get('/webhook-endpoints', async () => ({
    items: await listEndpoints(db),
    eventTypes: NOTIFICATION_TYPES,
    defaultEventTypes: DEFAULT_NOTIFICATION_TYPES,
  }));

  api.post('/webhook-endpoints', async (req, reply) => {
    const input = parseOr400(createBody, req.body, 'body');
    await checkDestination(input.url);
    const secret = newSecret();
    const endpoint = await createEndpoint(db, input, secret);
    await audit(req, 'webhook-endpoint.create', endpoint.id, {
      url: input.url,
      eventTypes: input.eventTypes,
    });
    return reply.code(201).send({ endpoint, secret });
  });

  api.get('/webhook-endpoints/:id', async (req) => {
    const { id } = parseOr400(endpointPath, req.params, 'path');
    const endpoint = await getEndpoint(db, id);
    if (!endpoint) throw notFound(id);
    return { endpoint };
  });

  api.patch('/webhook-endpoints/:id', async (req) => {
    const { id } = parseOr400(endpointPath, req.params, 'path');
    const patch = parseOr400(updateBody, req.body, 'body');
    if (patch.url !== undefined) await checkDestination(patch.url);
    const endpoint = await updateEndpoint(db, id, patch);
    if (!endpoint) throw notFound(id);
    await audit(req, 'webhook-endpoint.update', String(id), patch);
    return { endpoint };
  });

  api.post('/webhook-endpoints/:id/rotate-secret', async (req) => {
    const { id } = parseOr400(endpointPath, req.params, 'path');
    const { keepOldForSec } = parseOr400(rotateBody, req.body ?? undefined, 'body');
    const secret = newSecret();
    const endpoint = await rotateEndpointSecret(db, id, secret, keepOldForSec);
    if (!endpoint) throw notFound(id);
    await audit(req, 'webhook-endpoint.rotate-secret', String(id), { keepOldForSec });
    return { endpoint, secret };
  });

  api.delete('/webhook-endpoints/:id', async (req) => {
    const { id } = parseOr400(endpointPath, req.params, 'path');
    parseOr400(emptyBody, req.body, 'body');
    if (!(await deleteEndpoint(db, id))) throw notFound(id);
    await audit(req, 'webhook-endpoint.delete', String(id), {});
    return { deleted: String(id) };
  });

  api.get('/webhook-endpoints/:id/deliveries', async (req) => {
    const { id } = parseOr400(endpointPath, req.params, 'path');
    const q = parseOr400(deliveriesQuery, req.query, 'query');
    if (!(await getEndpoint(db, id))) throw notFound(id);
    return listDeliveries(db, id, q);
  });

  api.post('/webhook-endpoints/:id/deliveries/:deliveryId/redeliver', async (req) => {
    const { id, deliveryId } = parseOr400(deliveryPath, req.params, 'path');
    parseOr400(emptyBody, req.body, 'body');
    const endpoint = await getEndpoint(db, id);
    if (!endpoint) throw notFound(id);
    if (!endpoint.enabled)
      throw new HttpError(
        409,
        'endpoint_disabled',
        `webhook endpoint ${id} is disabled: enable it to redeliver`,
      );
    const marked = await markForRedelivery(db, id, deliveryId);
    if (!marked)
      throw new HttpError(404, 'not_found', `webhook endpoint ${id} has no delivery ${deliveryId}`);
    await enqueueDeliveries(d.notifyQueue, [{ id: deliveryId, round: marked.round }]);
    await audit(req, 'webhook-delivery.redeliver', String(deliveryId), {
      endpointId: String(id),
      notificationId: marked.delivery.notificationId,
    });
    return { delivery: marked.delivery };
  });
}
