// Writes a job's usage events to the ledger (deduplicated by eventId) and
// schedules the charge job of every key that got new events.
import type { Job, Queue } from 'bullmq';
import type { PrismaClient } from '../generated/prisma/client.js';
import { type EventRow, insertEvents, type KeyFields, keyString, upsertKeys } from '../ledger/sql.js';
import { eventsTotal } from '../metrics.js';
import { type ChargeJobData, type EventsJobData, scheduleCharge } from '../queue/queues.js';

export interface IngestProcessorOptions {
  db: PrismaClient;
  chargeQueue: Queue<ChargeJobData>;
  /** The batching window: a new key's charge job runs this long after its first event. */
  windowMs: number;
}

export class IngestProcessor {
  /** Batching keys never change once created: cache their ids. */
  private readonly keyIds = new Map<string, number>();
  /** When this process last scheduled each key; re-adding within the window is redundant. */
  private readonly scheduledAt = new Map<number, number>();

  constructor(private readonly o: IngestProcessorOptions) {}

  async process(job: Job<EventsJobData>): Promise<{ recorded: number; duplicates: number }> {
    const { events, source } = job.data;
    const enqueuedAt = new Date(job.timestamp).toISOString();
    const keys = events.map(keyString);
    const missing = new Map<string, KeyFields>();
    events.forEach((e, i) => {
      if (!this.keyIds.has(keys[i]!)) missing.set(keys[i]!, e);
    });
    if (missing.size > 0) {
      for (const [k, id] of await upsertKeys(this.o.db, [...missing.values()])) this.keyIds.set(k, id);
    }
    const rows: EventRow[] = events.map((e, i) => ({
      eventId: e.eventId,
      keyId: this.keyIds.get(keys[i]!)!,
      count: e.count,
      occurredAt: e.occurredAt ?? null,
      enqueuedAt,
      attributes: e.attributes ? JSON.stringify(e.attributes) : null,
    }));
    const insertedKeys = await insertEvents(this.o.db, rows);
    const duplicates = events.length - insertedKeys.length;
    eventsTotal.inc({ result: 'recorded', source }, insertedKeys.length);
    if (duplicates > 0) eventsTotal.inc({ result: 'duplicate', source }, duplicates);

    // On a retried job the events may have been inserted by the crashed run: schedule all its keys.
    const touched = job.attemptsMade > 0 ? rows.map((r) => r.keyId) : insertedKeys;
    await this.schedule(new Set(touched));
    return { recorded: insertedKeys.length, duplicates };
  }

  private async schedule(keys: Set<number>) {
    const now = Date.now();
    const due: number[] = [];
    for (const k of keys) {
      const last = this.scheduledAt.get(k);
      if (last === undefined || now - last >= this.o.windowMs) {
        due.push(k);
        this.scheduledAt.set(k, now);
      }
    }
    if (this.scheduledAt.size > 100_000) {
      for (const [k, t] of this.scheduledAt) if (now - t > this.o.windowMs) this.scheduledAt.delete(k);
    }
    await scheduleCharge(this.o.chargeQueue, due, this.o.windowMs);
  }
}
