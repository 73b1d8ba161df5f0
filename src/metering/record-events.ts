// Writes a job's usage events to the ledger (deduplicated by eventId) and
// schedules the charge job of every key that got new events. An event the ledger
// refuses (one that reached the queue without the API's validation) is recorded in
// rejected_event with its reason; the job's other events are written all the same.
import type { Job, Queue } from 'bullmq';
import { LRUCache } from 'lru-cache';
import type { UsageEvent } from '../events/schema.js';
import { type EventRow, insertEvents } from '../ledger/events.js';
import { type Refused, writeIsolating } from '../ledger/isolate.js';
import { type KeyFields, keyString, upsertKeys } from '../ledger/keys.js';
import type { Ledger } from '../ledger/pg-ledger.js';
import { type RejectedEventRow, recordRejectedEvents } from '../ledger/rejected-events.js';
import { eventsTotal } from '../metrics.js';
import { type ChargeJobData, type EventsJobData, scheduleCharge } from '../queue/queues.js';

export interface EventRecorderOptions {
  db: Ledger;
  chargeQueue: Queue<ChargeJobData>;
  /** The batching window: a new key's charge job runs this long after its first event. */
  windowMs: number;
  /**
   * Batching keys remembered (key ids, last scheduling), least recently used
   * dropped first, so memory stays bounded however many distinct keys arrive.
   * Default 100,000.
   */
  keyCacheSize?: number;
}

export const DEFAULT_KEY_CACHE_SIZE = 100_000;

type Indexed<T> = { index: number; value: T };

/**
 * What the worker refuses itself: the database would take a count below 1 and a
 * batch's sum would then be wrong. Everything else it refuses is found by the insert.
 */
function shapeProblem(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return 'not an event object';
  const count = (e as { count?: unknown }).count;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1)
    return 'count must be a positive integer';
  return undefined;
}

export class EventRecorder {
  /** Batching keys never change once created: cache their ids. */
  private readonly keyIds: LRUCache<string, number>;
  /** When this process last scheduled each key; re-adding within the window is redundant. */
  private readonly scheduledAt: LRUCache<number, number>;

  constructor(private readonly o: EventRecorderOptions) {
    const max = Math.max(1, o.keyCacheSize ?? DEFAULT_KEY_CACHE_SIZE);
    this.keyIds = new LRUCache({ max });
    this.scheduledAt = new LRUCache({ max });
  }

  /** Entries held by the key caches (bounded by keyCacheSize). */
  cacheSizes(): { keyIds: number; scheduledAt: number } {
    return { keyIds: this.keyIds.size, scheduledAt: this.scheduledAt.size };
  }

  async process(
    job: Job<EventsJobData>,
  ): Promise<{ recorded: number; duplicates: number; rejected: number }> {
    const { source } = job.data;
    const enqueuedAt = new Date(job.timestamp).toISOString();
    const rejected: Refused<Indexed<unknown>>[] = [];
    // The job's events, as given: only the API's validation vouches for their shape.
    const given: unknown[] = Array.isArray(job.data.events) ? job.data.events : [job.data.events];
    const events: Indexed<UsageEvent>[] = [];
    given.forEach((value, index) => {
      const problem = shapeProblem(value);
      if (problem) rejected.push({ item: { index, value }, reason: problem });
      else events.push({ index, value: value as UsageEvent });
    });

    const keyIds = await this.resolveKeys(events, rejected);
    const rows: Indexed<EventRow>[] = [];
    for (const { index, value: e } of events) {
      const keyId = keyIds.get(keyString(e));
      if (keyId === undefined) continue; // its key was refused (in `rejected` already)
      rows.push({
        index,
        value: {
          eventId: e.eventId,
          keyId,
          count: e.count,
          occurredAt: e.occurredAt ?? null,
          enqueuedAt,
          attributes: e.attributes ? JSON.stringify(e.attributes) : null,
        },
      });
    }
    const insert = (part: Indexed<EventRow>[]) =>
      insertEvents(
        this.o.db,
        part.map((r) => r.value),
      );
    const { written: insertedKeys, refused } = await writeIsolating(rows, insert);
    for (const r of refused)
      rejected.push({ item: { index: r.item.index, value: given[r.item.index] }, reason: r.reason });
    await this.recordRejected(job, rejected);

    const duplicates = rows.length - refused.length - insertedKeys.length;
    eventsTotal.inc({ result: 'recorded', source }, insertedKeys.length);
    if (duplicates > 0) eventsTotal.inc({ result: 'duplicate', source }, duplicates);
    if (rejected.length > 0) eventsTotal.inc({ result: 'ledger_rejected', source }, rejected.length);

    // On a retried job the events may have been inserted by the crashed run: schedule all its keys.
    const touched = job.attemptsMade > 0 ? rows.map((r) => r.value.keyId) : insertedKeys;
    await this.schedule(new Set(touched));
    return { recorded: insertedKeys.length, duplicates, rejected: rejected.length };
  }

  /**
   * The key id of each event's batching key, for this job (the cache may drop
   * entries meanwhile). Events whose key the ledger refuses are added to `rejected`.
   */
  private async resolveKeys(
    events: Indexed<KeyFields>[],
    rejected: Refused<Indexed<unknown>>[],
  ): Promise<Map<string, number>> {
    const ids = new Map<string, number>();
    const missing = new Map<string, KeyFields>();
    for (const { value: e } of events) {
      const k = keyString(e);
      const id = this.keyIds.get(k);
      if (id !== undefined) ids.set(k, id);
      else if (!missing.has(k)) missing.set(k, e);
    }
    if (missing.size === 0) return ids;
    const { written, refused } = await writeIsolating([...missing.values()], async (part) => [
      ...(await upsertKeys(this.o.db, part)),
    ]);
    for (const [k, id] of written) {
      ids.set(k, id);
      this.keyIds.set(k, id);
    }
    const refusedKeys = new Map(refused.map((r) => [keyString(r.item), r.reason]));
    for (const { index, value: e } of events) {
      const k = keyString(e);
      if (ids.has(k)) continue;
      // Not returned as given: the database altered a value (e.g. an unpaired surrogate).
      const reason = refusedKeys.get(k) ?? 'batching key not stored as given (ids must be printable ASCII)';
      rejected.push({ item: { index, value: e }, reason });
    }
    return ids;
  }

  private async recordRejected(job: Job<EventsJobData>, rejected: Refused<Indexed<unknown>>[]) {
    const jobKey = `${job.id}@${job.timestamp}`;
    const source = String(job.data.source);
    const rows: RejectedEventRow[] = rejected.map(({ item: { index, value }, reason }) => {
      const id = (value as { eventId?: unknown } | null)?.eventId;
      return {
        eventId: typeof id === 'string' ? id : null,
        raw: JSON.stringify(value) ?? String(value),
        reason,
        source,
        jobKey,
        jobIndex: index,
      };
    });
    await recordRejectedEvents(this.o.db, rows);
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
    await scheduleCharge(this.o.chargeQueue, due, this.o.windowMs);
  }
}
