// The producer SDK: app services record usage events; the promise resolves once
// the events are durable in Redis (BullMQ), and with `waitReplicas` once that many
// replicas have them too (src/queue/replication.ts). Events are buffered for up to
// `lingerMs` or `maxBufferEvents` so that many travel in one job. With admission
// control, they travel through the meter's server instead, which admits them.
import type { ConnectionOptions } from 'bullmq';
import { type UsageEvent, type UsageEventInput, validateEvents } from '../events/schema.js';
import { eventsTotal } from '../metrics.js';
import { createQueues, EVENTS_PER_JOB, enqueueEvents, type MeterQueues } from '../queue/queues.js';
import type { RedisClient } from '../queue/redis-connection.js';
import { hashTagged } from '../queue/redis-prefix.js';
import { type WaitReplicas, writeReplicated } from '../queue/replication.js';
import { InsufficientUsesError, InvalidEventsError, ProducerClosedError } from './errors.js';

/** At most this many events per request to the server (its own limit). */
const MAX_EVENTS_PER_REQUEST = 1_000;

export interface ProducerOptions {
  /**
   * ioredis instance (a Redis, including one through Sentinel, or a Cluster) or
   * connection options for the Redis that BullMQ uses.
   */
  connection: ConnectionOptions;
  /**
   * Redis key prefix of the deployment. Default 'usage-meter' (REDIS_PREFIX). With a
   * Cluster connection it is put in a hash tag (`{usage-meter}`), as the meter does.
   */
  prefix?: string;
  /**
   * Resolve a call only once this many Redis replicas have its events (WAIT on the
   * connection after the write), else reject with NotReplicatedError: a failover then
   * cannot lose an acknowledged event. Default 0 (the primary's answer is enough).
   * WAIT holds the connection while it waits: give the producer one of its own.
   * With `admission`, the server's REDIS_WAIT_REPLICAS applies instead.
   */
  waitReplicas?: number;
  /** How long to wait for those replicas, ms. Default 1000. */
  waitTimeoutMs?: number;
  /** Send when this many events are buffered. Default EVENTS_PER_JOB (1000). */
  maxBufferEvents?: number;
  /** Send buffered events at the latest this long after the first one. Default 5 ms; 0 sends at once. */
  lingerMs?: number;
  /**
   * With the deployment's admission control on (METER_ADMISSION=reject): the meter's
   * server. Events then go through its HTTP API (POST /v1/events), which admits
   * them, instead of straight to Redis (the producer has no ledger to decide with);
   * a call whose events are refused rejects with InsufficientUsesError, its other
   * events recorded. Default: none (straight to Redis, nothing refused).
   */
  admission?: { url: string; apiKey: string; timeoutMs?: number };
}

export interface Producer {
  /** Validates and enqueues one event. Rejects with InvalidEventsError (nothing enqueued). */
  record(event: UsageEventInput): Promise<void>;
  /** Validates all, then enqueues all; if any is invalid none is enqueued. */
  recordMany(events: UsageEventInput[]): Promise<void>;
  /** Sends what is buffered and waits until Redis has it. */
  flush(): Promise<void>;
  /** Flushes, then closes the queue connection. */
  close(): Promise<void>;
}

interface Pending {
  events: UsageEvent[];
  waiters: { eventIds: string[]; resolve: () => void; reject: (err: unknown) => void }[];
}

export function createProducer(options: ProducerOptions): Producer {
  const maxBuffer = options.maxBufferEvents ?? EVENTS_PER_JOB;
  const lingerMs = options.lingerMs ?? 5;
  const cluster = (options.connection as { isCluster?: unknown }).isCluster === true;
  const prefix = cluster ? hashTagged(options.prefix ?? 'usage-meter') : (options.prefix ?? 'usage-meter');
  const queues: MeterQueues = createQueues(options.connection, prefix);
  // Reconnects (a restart, a failover) are ioredis's job, and a failed enqueue rejects
  // record() itself: BullMQ need not print every connection error meanwhile.
  queues.events.on('error', () => {});
  queues.charge.on('error', () => {});
  const wait: WaitReplicas | undefined =
    (options.waitReplicas ?? 0) > 0
      ? { replicas: options.waitReplicas!, timeoutMs: options.waitTimeoutMs ?? 1_000 }
      : undefined;
  // The events' write, and with `wait` the WAIT on the connection BullMQ wrote them on.
  const enqueue = async (events: UsageEvent[]) => {
    if (!wait) return enqueueEvents(queues.events, events, 'sdk');
    const client = (await queues.events.getBackend().client) as unknown as RedisClient;
    return writeReplicated(client, prefix, wait, () => enqueueEvents(queues.events, events, 'sdk'));
  };
  let buffer: Pending = { events: [], waiters: [] };
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const inFlight = new Set<Promise<void>>();

  const send = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = buffer;
    if (batch.events.length === 0) return;
    buffer = { events: [], waiters: [] };
    if (options.admission) {
      const p = sendThroughServer(options.admission, batch);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      return;
    }
    const p = enqueue(batch.events).then(
      () => {
        eventsTotal.inc({ result: 'accepted', source: 'sdk' }, batch.events.length);
        for (const w of batch.waiters) w.resolve();
      },
      (err) => {
        for (const w of batch.waiters) w.reject(err);
      },
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  const validateAll = (raws: UsageEventInput[]): UsageEvent[] => {
    const { valid, rejected } = validateEvents(raws);
    if (rejected.length > 0) {
      eventsTotal.inc({ result: 'rejected', source: 'sdk' }, rejected.length);
      throw new InvalidEventsError(rejected);
    }
    return valid.map((v) => v.event);
  };

  const recordMany = async (raws: UsageEventInput[]): Promise<void> => {
    if (closed) throw new ProducerClosedError();
    const events = validateAll(raws);
    if (events.length === 0) return;
    const eventIds = events.map((e) => e.eventId);
    const done = new Promise<void>((resolve, reject) => buffer.waiters.push({ eventIds, resolve, reject }));
    buffer.events.push(...events);
    if (buffer.events.length >= maxBuffer || lingerMs === 0) send();
    else if (!timer) timer = setTimeout(send, lingerMs);
    return done;
  };

  const flush = async () => {
    send();
    await Promise.all([...inFlight]);
  };

  return {
    record: (event) => recordMany([event]),
    recordMany,
    flush,
    async close() {
      closed = true;
      await flush();
      await queues.close();
    },
  };
}

/** Largest JSON body a request to the server carries (its limit is 1 MiB). */
const MAX_BODY_BYTES = 900 * 1024;

/** The batch in requests of at most MAX_EVENTS_PER_REQUEST events and MAX_BODY_BYTES. */
function parts(events: UsageEvent[]): UsageEvent[][] {
  const out: UsageEvent[][] = [];
  let part: UsageEvent[] = [];
  let bytes = 2;
  for (const e of events) {
    const size = Buffer.byteLength(JSON.stringify(e)) + 1;
    if (part.length > 0 && (part.length >= MAX_EVENTS_PER_REQUEST || bytes + size > MAX_BODY_BYTES)) {
      out.push(part);
      part = [];
      bytes = 2;
    }
    part.push(e);
    bytes += size;
  }
  if (part.length > 0) out.push(part);
  return out;
}

/**
 * Sends a batch through the server's POST /v1/events (admission control), a part
 * at a time. Each waiter settles by its own events: resolved when all were
 * recorded; rejected with InsufficientUsesError when some were refused; rejected
 * with the failure when a part carrying one of them failed (the events of that
 * part may or may not be stored: send them again, the same eventIds are dropped as
 * duplicates).
 */
async function sendThroughServer(
  server: NonNullable<ProducerOptions['admission']>,
  batch: Pending,
): Promise<void> {
  const base = server.url.replace(/\/+$/, '');
  const outcome = new Map<string, { status: string; errors?: string[] } | Error>();
  for (const part of parts(batch.events)) {
    try {
      const res = await fetch(`${base}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(part),
        signal: AbortSignal.timeout(server.timeoutMs ?? 15_000),
      });
      const body = (await res.json().catch(() => undefined)) as
        | {
            results?: { eventId?: string; status: string; errors?: string[] }[];
            error?: { message?: string };
          }
        | undefined;
      if (res.status !== 202 || !body?.results)
        throw new Error(
          `the meter's server answered ${res.status}${body?.error?.message ? `: ${body.error.message}` : ''}`,
        );
      // A refusal of an eventId wins over a later copy of it reported as a duplicate.
      for (const r of body.results) {
        const prev = outcome.get(r.eventId ?? '');
        if (r.eventId && !(prev && !(prev instanceof Error) && prev.status === 'insufficient'))
          outcome.set(r.eventId, r);
      }
    } catch (err) {
      for (const e of part) outcome.set(e.eventId, err as Error);
    }
  }
  for (const w of batch.waiters) {
    const failed = w.eventIds.map((id) => outcome.get(id)).find((o) => o instanceof Error);
    if (failed) {
      w.reject(failed);
      continue;
    }
    const results = w.eventIds.map((eventId, index) => ({
      index,
      eventId,
      r: outcome.get(eventId) as { status: string; errors?: string[] } | undefined,
    }));
    // The server refused what this SDK validated (a schema of another version): not recorded.
    const invalid = results.filter(({ r }) => r?.status === 'rejected');
    const refused = results.filter(({ r }) => r?.status === 'insufficient');
    if (invalid.length > 0)
      w.reject(
        new InvalidEventsError(
          invalid.map(({ index, eventId, r }) => ({ index, eventId, errors: r!.errors ?? [] })),
        ),
      );
    else if (refused.length > 0)
      w.reject(
        new InsufficientUsesError(
          refused.map(({ eventId, r }) => ({ eventId, reason: r!.errors?.join('; ') ?? r!.status })),
        ),
      );
    else w.resolve();
  }
}
