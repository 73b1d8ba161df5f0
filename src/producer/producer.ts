// The producer SDK: app services record usage events; the promise resolves once
// the events are durable in Redis (BullMQ). Events are buffered for up to
// `lingerMs` or `maxBufferEvents` so that many travel in one job.
import type { ConnectionOptions } from 'bullmq';
import { type UsageEvent, type UsageEventInput, validateEvent } from '../events/schema.js';
import { eventsTotal } from '../metrics.js';
import { createQueues, EVENTS_PER_JOB, enqueueEvents, type MeterQueues } from '../queue/queues.js';
import { InvalidEventsError, ProducerClosedError } from './errors.js';

export interface ProducerOptions {
  /** ioredis instance or connection options for the Redis that BullMQ uses. */
  connection: ConnectionOptions;
  /** Redis key prefix of the deployment. Default 'usage-meter' (REDIS_PREFIX). */
  prefix?: string;
  /** Send when this many events are buffered. Default EVENTS_PER_JOB (1000). */
  maxBufferEvents?: number;
  /** Send buffered events at the latest this long after the first one. Default 5 ms; 0 sends at once. */
  lingerMs?: number;
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
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
}

export function createProducer(options: ProducerOptions): Producer {
  const maxBuffer = options.maxBufferEvents ?? EVENTS_PER_JOB;
  const lingerMs = options.lingerMs ?? 5;
  const queues: MeterQueues = createQueues(options.connection, options.prefix ?? 'usage-meter');
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
    const p = enqueueEvents(queues.events, batch.events, 'sdk').then(
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
    const valid: UsageEvent[] = [];
    const problems: { index: number; eventId?: string; errors: string[] }[] = [];
    raws.forEach((raw, index) => {
      const v = validateEvent(raw);
      if (v.ok) valid.push(v.event);
      else {
        const id = (raw as { eventId?: unknown } | null)?.eventId;
        problems.push({ index, eventId: typeof id === 'string' ? id : undefined, errors: v.errors });
      }
    });
    if (problems.length > 0) {
      eventsTotal.inc({ result: 'rejected', source: 'sdk' }, problems.length);
      throw new InvalidEventsError(problems);
    }
    return valid;
  };

  const recordMany = async (raws: UsageEventInput[]): Promise<void> => {
    if (closed) throw new ProducerClosedError();
    const events = validateAll(raws);
    if (events.length === 0) return;
    const done = new Promise<void>((resolve, reject) => buffer.waiters.push({ resolve, reject }));
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
