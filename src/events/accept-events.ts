// Accepts raw events from the HTTP API and the NDJSON import: validates each,
// reports duplicates it can see (within the call, and already in the ledger when a
// database is given), enqueues the rest and resolves once Redis has them (and,
// with waitReplicas, as many of its replicas: src/queue/replication.ts). The
// ledger stays the final judge: an event that races a copy of itself through two
// calls is reported accepted twice but recorded and charged once.
import type { Admission } from '../balances/admission.js';
import { type UsageEvent, validateEvents } from '../events/schema.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import { existingEventIds } from '../ledger/events.js';
import { eventsTotal } from '../metrics.js';
import { createQueues, type EventSource, enqueueEvents, type MeterQueues } from '../queue/queues.js';
import type { RedisClient } from '../queue/redis-connection.js';
import { type WaitReplicas, writeReplicated } from '../queue/replication.js';
import { withTimeout } from '../timeout.js';

export interface AcceptResult {
  index: number;
  eventId?: string;
  /** insufficient: refused by admission control (METER_ADMISSION=reject), nothing enqueued. */
  status: 'accepted' | 'duplicate' | 'rejected' | 'insufficient';
  errors?: string[];
}

export interface EventAcceptorOptions {
  /** The connection the events are written on (and WAITed on, with waitReplicas). */
  redis: RedisClient;
  /** Redis key prefix of the deployment (redisKeyPrefix: REDIS_PREFIX, in a hash tag on a cluster). */
  prefix: string;
  /** With a database, events already in the ledger are reported as duplicates. */
  db?: PrismaClient;
  /**
   * Longest wait for that ledger lookup, ms; past it accept() rejects having
   * enqueued nothing (the caller may go on without the lookup, as the HTTP server
   * does). Default: no limit (an import waits for the ledger).
   */
  lookupTimeoutMs?: number;
  /** Admission control: events whose user has not the uses are refused, not enqueued. */
  admission?: Admission;
  /**
   * REDIS_WAIT_REPLICAS: accept() resolves only once this many replicas have the
   * events, else rejects with NotReplicatedError (the events may be stored: a
   * retry with the same eventIds is charged once).
   */
  waitReplicas?: WaitReplicas;
}

export class EventAcceptor {
  private readonly queues: MeterQueues;

  constructor(private readonly o: EventAcceptorOptions) {
    this.queues = createQueues(o.redis, o.prefix);
    // Reconnects are ioredis's job; a failed enqueue rejects accept() itself.
    this.queues.events.on('error', () => {});
    this.queues.charge.on('error', () => {});
  }

  async accept(raws: unknown[], source: EventSource): Promise<AcceptResult[]> {
    const results: AcceptResult[] = [];
    const checked = validateEvents(raws);
    for (const r of checked.rejected)
      results[r.index] = { index: r.index, eventId: r.eventId, status: 'rejected', errors: r.errors };
    // A repeat of an eventId earlier in the same request is a duplicate (the first one counts).
    const seen = new Set<string>();
    const valid = checked.valid.filter(({ index, event }) => {
      if (seen.has(event.eventId)) {
        results[index] = { index, eventId: event.eventId, status: 'duplicate' };
        return false;
      }
      seen.add(event.eventId);
      return true;
    });
    let inLedger = new Set<string>();
    if (this.o.db) {
      const lookup = existingEventIds(this.o.db, [...seen]);
      const timeoutMs = this.o.lookupTimeoutMs;
      inLedger =
        timeoutMs === undefined ? await lookup : await withTimeout(lookup, timeoutMs, 'the ledger lookup');
    }
    const fresh = valid.filter(({ index, event }) => {
      if (!inLedger.has(event.eventId)) return true;
      results[index] = { index, eventId: event.eventId, status: 'duplicate' };
      return false;
    });
    const refused = this.o.admission ? await this.o.admission.admit(fresh.map((v) => v.event)) : new Map();
    const accepted: UsageEvent[] = [];
    for (const { index, event } of fresh) {
      const refusal = refused.get(event.eventId);
      if (refusal)
        results[index] = { index, eventId: event.eventId, status: 'insufficient', errors: [refusal.message] };
      else {
        results[index] = { index, eventId: event.eventId, status: 'accepted' };
        accepted.push(event);
      }
    }
    if (accepted.length > 0)
      await writeReplicated(this.o.redis, this.o.prefix, this.o.waitReplicas, () =>
        enqueueEvents(this.queues.events, accepted, source),
      );
    const count = (s: AcceptResult['status']) => results.filter((r) => r.status === s).length;
    eventsTotal.inc({ result: 'accepted', source }, accepted.length);
    eventsTotal.inc({ result: 'duplicate', source }, count('duplicate'));
    eventsTotal.inc({ result: 'rejected', source }, count('rejected'));
    if (this.o.admission) eventsTotal.inc({ result: 'insufficient', source }, count('insufficient'));
    return results;
  }

  async close(): Promise<void> {
    await this.queues.close();
  }
}
