// Watches the ledger of a running benchmark until every event is charged: when every
// event was in it, when every one was charged, and how many batches had been charged
// when sending ended (so the calls/s of the drain can be told apart). It probes the
// charged batches every 500 ms, and counts usage_event until it holds every event:
// a small load on the database during ingestion, so the figures err on the slow side.
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';

export interface WatchOptions {
  db: pg.Client;
  /** Events sent; done when charged batches hold this many. */
  total: number;
  /** performance.now() at the first request. */
  t0: number;
  timeoutSec: number;
  /** True once every event has been acknowledged. */
  sendingDone: () => boolean;
  /** Throws the sender's error, if it failed, so the watch stops. */
  checkSender: () => void;
  /** A progress line every 5 s. */
  progress: (line: string) => void;
  acked: () => number;
}

export interface WatchResult {
  /** All events in the ledger, s after t0. */
  recordedSec?: number;
  /** All events charged, s after t0. */
  chargedSec: number;
  batches: number;
  /** Charged batches when the watch first saw sending done, and when. */
  atSendingEnd?: { batches: number; sec: number };
}

export async function watchUntilCharged(o: WatchOptions): Promise<WatchResult> {
  const sec = () => (performance.now() - o.t0) / 1000;
  let recordedSec: number | undefined;
  let atSendingEnd: WatchResult['atSendingEnd'];
  let lastLine = 0;
  for (;;) {
    o.checkSender();
    const r = await o.db.query<{ events: number; batches: number }>(
      `SELECT coalesce(sum(event_count), 0)::int AS events, count(*)::int AS batches
       FROM charge_batch WHERE status = 'charged' AND parent_id IS NULL`,
    );
    const charged = r.rows[0]!;
    let recorded = o.total;
    if (recordedSec === undefined) {
      recorded = (await o.db.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_event')).rows[0]!.n;
      if (recorded >= o.total) recordedSec = sec();
    }
    if (o.sendingDone() && !atSendingEnd) atSendingEnd = { batches: charged.batches, sec: sec() };
    if (charged.events >= o.total)
      return { recordedSec, chargedSec: sec(), batches: charged.batches, atSendingEnd };
    if (sec() - lastLine >= 5) {
      lastLine = sec();
      o.progress(
        `  ${Math.round(sec())} s: acknowledged ${o.acked()}, in the ledger ${recorded}, charged ${charged.events} events in ${charged.batches} batches`,
      );
    }
    if (sec() > o.timeoutSec) throw new Error(`not every event charged within ${o.timeoutSec} s`);
    await sleep(500);
  }
}
