// What bench/scale.ts reports: the result object (printed as one JSON line with
// --json) and its human-readable lines. docs/performance.md explains each figure.

export interface ScaleResult {
  events: number;
  uses: number;
  users: number;
  /** Users that received events (one batching key each). */
  keys: number;
  workers: number;
  servers: number;
  settings: {
    qps: number;
    simLatencyMs: number;
    batchWindowMs: number;
    batchMaxHoldMs: number;
    eventsPerRequest: number;
    requestsInFlightPerServer: number;
    durable: boolean;
  };
  ingest: {
    /** Events acknowledged (2xx) per second, first request to last acknowledgement. */
    eventsPerSec: number;
    sec: number;
    requests: number;
    /** Attempts sent again, by cause. */
    retries: Record<string, number>;
    duplicatesReported: number;
    requestMs: { p50: number; p99: number };
    /** Events acknowledged by each server. */
    perServer: number[];
  };
  allInLedgerSec: number;
  allChargedSec: number;
  chargedAfterIngestSec: number;
  /** Batches charged per second from the end of ingestion on (one call each without faults). */
  callsPerSecAfterIngest: number | null;
  /** Share of the machine's cores busy (0..1) while sending, and after it until all was charged. */
  cpuBusy: { ingest: number | null; afterIngest: number | null };
  /** Every key needs one call after its last event: keys/QPS at least. */
  lowerBoundAfterIngestSec: number;
  endToEndEventsPerSec: number;
  /** DecrUserRemainTimes calls the simulator received. */
  douyinCalls: number;
  /** All business calls (reads included) the simulator received. */
  businessCalls: number;
  eventsPerCall: number;
  maxCallsPerSecond: number;
  rateLimitedAnswers: number;
  replays: number;
  latencyMs: { p50: number; p99: number };
  /** CPU seconds each process used from the first request to the last charge. */
  cpuSec: Record<string, number>;
  peakRssMb: Record<string, number | null>;
  redisPeakMb: number;
  perWorker: { recorded: number; batchesCharged: number }[];
  limit: { pgInsertEventsPerSec: number };
  ratio: { endToEndToPgInsert: number; endToEndToBaseline: number };
  baseline: { events: number; douyinCalls: number; endToEndEventsPerSec: number };
  exact: boolean;
  withinQps: boolean;
  problems: string[];
  batchesByStatus: Record<string, number>;
}

const pct = (share: number | null) => (share === null ? '?' : `${Math.round(share * 100)}%`);

export function reportLines(r: ScaleResult): string[] {
  const retries = Object.entries(r.ingest.retries).map(([cause, n]) => `${n} ${cause}`);
  const list = (o: Record<string, unknown>) =>
    Object.entries(o)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  return [
    `ingest: ${r.ingest.eventsPerSec} events/s acknowledged in ${r.ingest.sec} s (${r.ingest.requests} requests, p50 ${r.ingest.requestMs.p50} ms, p99 ${r.ingest.requestMs.p99} ms; per server ${r.ingest.perServer.join(' / ')}; retried: ${retries.length ? retries.join(', ') : 'none'})`,
    `all in the ledger after ${r.allInLedgerSec} s; all charged after ${r.allChargedSec} s, ${r.chargedAfterIngestSec} s after the last acknowledgement (at least keys/QPS = ${r.lowerBoundAfterIngestSec} s; ${r.callsPerSecAfterIngest ?? '?'} calls/s meanwhile)`,
    `cores busy: ${pct(r.cpuBusy.ingest)} while sending, ${pct(r.cpuBusy.afterIngest)} after`,
    `end to end: ${r.endToEndEventsPerSec} events/s`,
    `Douyin calls: ${r.douyinCalls} (${r.eventsPerCall} events a call; ${r.businessCalls} business calls in all); max calls in 1 s ${r.maxCallsPerSecond} (QPS ${r.settings.qps}); "too frequent" answers ${r.rateLimitedAnswers}`,
    `latency enqueue -> charged: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms`,
    `CPU s from the first request to the last charge: ${list(r.cpuSec)} (rest: PostgreSQL, Redis and whatever else ran)`,
    `peak RSS MB: ${list(r.peakRssMb)}; Redis peak memory ${r.redisPeakMb} MB`,
    `per worker, events recorded / batches charged: ${r.perWorker.map((w) => `${w.recorded} / ${w.batchesCharged}`).join(', ')}`,
    `ratio to the PostgreSQL insert limit: ${r.ratio.endToEndToPgInsert} (${r.endToEndEventsPerSec} / ${r.limit.pgInsertEventsPerSec} rows/s)`,
    `baseline, one call per event (${r.baseline.events} events): ${r.baseline.endToEndEventsPerSec} events/s; end to end is ${r.ratio.endToEndToBaseline}x that`,
    `exact: ${r.exact}${r.problems.length ? ` (${r.problems.join('; ')})` : ''}`,
    `within the QPS: ${r.withinQps}`,
  ];
}
