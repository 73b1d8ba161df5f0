// POST /v1/events: producers send one event or an array of up to 1,000 with an
// API key. The answer (202) comes only after the accepted events are durable in
// Redis, with one result per event in the order sent.
import type { FastifyInstance } from 'fastify';
import type { AcceptResult, EventAcceptor } from '../events/accept-events.js';
import type { Logger } from '../logger.js';
import { NotReplicatedError } from '../producer/errors.js';
import { withTimeout } from '../timeout.js';
import type { ApiKeys } from './auth.js';
import { HttpError } from './errors.js';

/** Most events in one request. */
export const MAX_EVENTS_PER_REQUEST = 1_000;
/** Largest request body of /v1/events, bytes (1 MiB): 1,000 events of ~1 KiB each. */
export const EVENTS_BODY_LIMIT = 1024 * 1024;

export interface EventRouteDeps {
  apiKeys: ApiKeys;
  /** Reports events already in the ledger as duplicates. */
  acceptor: EventAcceptor;
  /** Used when the ledger cannot be asked (PostgreSQL down): ingestion needs only Redis. */
  fallbackAcceptor: EventAcceptor;
  logger: Logger;
  bodyLimit?: number;
  /** How long the request may wait for Redis, ms. Default 10000. */
  timeoutMs?: number;
}

export interface IngestResponse {
  results: AcceptResult[];
  accepted: number;
  duplicates: number;
  rejected: number;
  /** Refused by admission control (METER_ADMISSION=reject). */
  insufficient: number;
}

export function registerEventRoutes(app: FastifyInstance, d: EventRouteDeps): void {
  const timeoutMs = d.timeoutMs ?? 10_000;

  const ingest = async (events: unknown[]): Promise<AcceptResult[]> => {
    try {
      return await d.acceptor.accept(events, 'http');
    } catch (err) {
      // Stored but not confirmed by the replicas: asking again without the lookup would not help.
      if (err instanceof NotReplicatedError) throw err;
      // Nothing was enqueued when the ledger lookup failed; Redis alone decides now
      // (the ledger still drops a duplicate later, it just is reported as accepted).
      d.logger.warn({ err: (err as Error).message }, 'ingest with ledger lookup failed; retrying without it');
      return d.fallbackAcceptor.accept(events, 'http');
    }
  };

  app.post(
    '/v1/events',
    {
      bodyLimit: d.bodyLimit ?? EVENTS_BODY_LIMIT,
      onRequest: d.apiKeys.required,
    },
    async (req, reply): Promise<IngestResponse> => {
      const body = req.body;
      let events: unknown[];
      if (Array.isArray(body)) events = body;
      else if (body !== null && typeof body === 'object') events = [body];
      else
        throw new HttpError(400, 'invalid_request', 'the body must be an event object or an array of events');
      if (events.length === 0) throw new HttpError(400, 'invalid_request', 'the array of events is empty');
      if (events.length > MAX_EVENTS_PER_REQUEST) {
        throw new HttpError(
          400,
          'too_many_events',
          `at most ${MAX_EVENTS_PER_REQUEST} events per request (got ${events.length}); nothing was accepted`,
        );
      }
      let results: AcceptResult[];
      try {
        results = await withTimeout(ingest(events), timeoutMs, 'enqueueing the events');
      } catch (err) {
        if (err instanceof NotReplicatedError) {
          d.logger.warn({ err: err.message }, 'events not confirmed by the Redis replicas');
          // The message says to send them again; the ledger drops what was stored twice.
          throw new HttpError(503, 'not_replicated', err.message, {
            replicasWanted: err.wanted,
            replicasConfirmed: err.confirmed,
          });
        }
        d.logger.error({ err: (err as Error).message }, 'ingest failed');
        throw new HttpError(
          503,
          'unavailable',
          'the events could not be stored; retry with the same eventIds (duplicates are dropped)',
        );
      }
      const count = (s: AcceptResult['status']) => results.filter((r) => r.status === s).length;
      reply.code(202);
      return {
        results,
        accepted: count('accepted'),
        duplicates: count('duplicate'),
        rejected: count('rejected'),
        insufficient: count('insufficient'),
      };
    },
  );
}
