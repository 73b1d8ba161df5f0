// The rejected_event table: events the ledger refused, each with its reason, so
// that the rest of their job is recorded and charged and nothing is dropped
// silently. Written by the ingest processor, read by the status CLI and the API.
import { escapeUnstorable } from '../events/text.js';
import type { Sql } from './db.js';

export interface RejectedEventRow {
  /** Null when the event had no string eventId. */
  eventId: string | null;
  /** The event as JSON text. */
  raw: string;
  reason: string;
  source: string;
  /** BullMQ job "id@timestamp" and the event's index in it: a retried job records each once. */
  jobKey: string;
  jobIndex: number;
}

/** Records rejected events; a row already recorded (same job and index) is skipped. */
export async function recordRejectedEvents(db: Sql, rows: RejectedEventRow[]): Promise<void> {
  if (rows.length === 0) return;
  // Whatever refused the event must not refuse its record: escape what text cannot hold.
  const text = (s: string) => escapeUnstorable(s);
  await db.$executeRaw`
    INSERT INTO rejected_event (event_id, raw, reason, source, job_key, job_index)
    SELECT * FROM unnest(
      ${rows.map((r) => (r.eventId === null ? null : text(r.eventId)))}::text[],
      ${rows.map((r) => text(r.raw))}::text[], ${rows.map((r) => text(r.reason))}::text[],
      ${rows.map((r) => text(r.source))}::text[], ${rows.map((r) => text(r.jobKey))}::text[],
      ${rows.map((r) => r.jobIndex)}::int[])
    ON CONFLICT (job_key, job_index) DO NOTHING`;
}

export interface RejectedEventView {
  id: string;
  eventId: string | null;
  reason: string;
  source: string;
  receivedAt: string;
  /** The event's JSON, cut at RAW_SHOWN characters. */
  raw: string;
}

export const RAW_SHOWN = 1_000;

/** How many events were rejected in all, and the newest `limit` of them. */
export async function rejectedEventSummary(
  db: Sql,
  limit: number,
): Promise<{ total: number; latest: RejectedEventView[] }> {
  const [count, latest] = await Promise.all([
    db.$queryRaw<{ total: number }[]>`SELECT count(*)::int AS total FROM rejected_event`,
    db.$queryRaw<(Omit<RejectedEventView, 'receivedAt'> & { receivedAt: Date })[]>`
      SELECT id::text AS id, event_id AS "eventId", reason, source, received_at AS "receivedAt",
             left(raw, ${RAW_SHOWN}) AS raw
      FROM rejected_event ORDER BY id DESC LIMIT ${limit}`,
  ]);
  return {
    total: count[0]?.total ?? 0,
    latest: latest.map((r) => ({ ...r, receivedAt: r.receivedAt.toISOString() })),
  };
}
