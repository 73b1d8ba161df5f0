// `npm run bench [-- options]`: end-to-end throughput, latency and exactness of
// the pipeline, measured against limits taken in the same run: PostgreSQL's own
// speed at inserting the same rows (the physical limit of the ledger) and a naive
// baseline (one DecrUserRemainTimes per event) on the same simulator settings.
// Machines of one kind differ by 1.5x, so the ratios are the figures to compare.
// PostgreSQL runs with production durability unless --unsafe-fast-db. A burst by
// default; --rate R --duration S sends at a steady rate instead; --webhooks adds
// an endpoint wanting every notification (batch.charged too) at a local receiver
// and reports when the last batch.charged arrived. Prints
// human-readable figures, or one JSON object with --json. See docs/performance.md.

import { type ChildProcess, execSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';

import type { UsageEventInput } from '../src/events/schema.js';
import { NOTIFICATION_TYPES } from '../src/notify/event-types.js';
import { createProducer } from '../src/producer/producer.js';
import { EVENTS_PER_JOB } from '../src/queue/queues.js';
import { startSimulator } from '../src/simulator/index.js';
import { measureNaiveBaseline } from './baseline.js';
import { type InsertLimitRow, measureInsertLimit } from './insert-limit.js';
import { startBenchServices } from './services.js';

const { values: a } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    users: { type: 'string', default: '1000' },
    'dup-share': { type: 'string', default: '0.05' },
    latency: { type: 'string', default: '20' },
    qps: { type: 'string', default: '1000' },
    'busy-rate': { type: 'string', default: '0' },
    '5xx-rate': { type: 'string', default: '0' },
    'reset-rate': { type: 'string', default: '0' },
    'lost-rate': { type: 'string', default: '0' },
    workers: { type: 'string', default: '1' },
    window: { type: 'string', default: '1000' },
    'baseline-events': { type: 'string', default: '10000' },
    'unsafe-fast-db': { type: 'boolean', default: false },
    rate: { type: 'string' },
    duration: { type: 'string', default: '40' },
    json: { type: 'boolean', default: false },
    webhooks: { type: 'boolean', default: false },
  },
});
const N = a.rate === undefined ? Number(a.events) : Math.round(Number(a.rate) * Number(a.duration));
const U = Number(a.users);
const DUP = Number(a['dup-share']);
const QPS = Number(a.qps);
const WORKERS = Number(a.workers);
const DURABLE = !a['unsafe-fast-db'];
const RATE = a.rate === undefined ? undefined : Number(a.rate);
const DURATION = Number(a.duration);
const log = (msg: string) => {
  if (!a.json) process.stdout.write(`${msg}\n`);
};
const root = fileURLToPath(new URL('../', import.meta.url));
// The workers run exactly as `npm run worker` runs them (compiled, with its node
// flags), so the benchmark measures what is deployed.
execSync('npm run -s build', { cwd: root, stdio: 'inherit' });
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const [, ...WORKER_ARGS] = [
  ...(pkg.scripts.worker as string).split(/\s+/).slice(0, -1),
  ...(process.env.BENCH_WORKER_FLAGS ? process.env.BENCH_WORKER_FLAGS.split(' ') : []),
  (pkg.scripts.worker as string).split(/\s+/).at(-1)!,
]; // drops the leading "node"

// Services: the given ones, or throwaway ones, and a fresh database.
const services = await startBenchServices({ durable: DURABLE, label: 'bench' });
const { redisUrl, databaseUrl } = services;
const prefix = `bench-${Date.now()}`;

// --webhooks: a receiver answering 204, and an endpoint wanting every type.
const hooks = { received: 0, charged: 0, lastAt: 0 };
const receiver = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    hooks.received++;
    if (req.headers['x-meter-event-type'] === 'batch.charged') hooks.charged++;
    hooks.lastAt = performance.now();
    res.writeHead(204).end();
  });
});
if (a.webhooks) {
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  await c.query(`INSERT INTO webhook_endpoint (url, event_types, secret) VALUES ($1, $2, 'whsec_bench')`, [
    `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
    NOTIFICATION_TYPES,
  ]);
  await c.end();
}

const sim = await startSimulator({
  faults: {
    qps: QPS,
    latencyMs: Number(a.latency),
    busyRate: Number(a['busy-rate']),
    http5xxRate: Number(a['5xx-rate']),
    resetRate: Number(a['reset-rate']),
    appliedButLostRate: Number(a['lost-rate']),
  },
});
const users = Array.from({ length: U }, (_, i) => `bench-user-${i}`);
for (const openId of users)
  sim.setBalance({ openId, serviceId: 'svc', serviceModeId: 'mode', remaining: 1e9 });

// The workload: N events, a share of them repeating an earlier eventId.
const events: UsageEventInput[] = [];
const expected = new Map<string, number>();
let unique = 0;
for (let i = 0; i < N; i++) {
  if (unique > 0 && Math.random() < DUP) {
    events.push(events[Math.floor(Math.random() * events.length)]!);
    continue;
  }
  const openId = users[Math.floor(Math.random() * U)]!;
  const count = 1 + (i % 3);
  events.push({ eventId: `ev-${i}`, openId, serviceId: 'svc', serviceModeId: 'mode', count });
  expected.set(openId, (expected.get(openId) ?? 0) + count);
  unique++;
}
const keys = expected.size;

// The physical limit, in this run: PostgreSQL inserting the same rows into a table
// shaped like usage_event (same columns, keys and indexes: unique eventId, ON
// CONFLICT DO NOTHING), EVENTS_PER_JOB rows a statement, from one client.
const pgInsertEventsPerSec = await measureInsertLimit(databaseUrl, insertLimitChunks());
log(`limit: PostgreSQL inserts these rows at ${pgInsertEventsPerSec} rows/s (durable: ${DURABLE})`);

const env = {
  ...process.env,
  DOUYIN_BASE_URL: sim.url,
  DOUYIN_CLIENT_KEY: 'sim-client-key',
  DOUYIN_CLIENT_SECRET: 'sim-client-secret',
  DOUYIN_QPS: String(QPS),
  REDIS_URL: redisUrl,
  REDIS_PREFIX: prefix,
  DATABASE_URL: databaseUrl,
  METER_BATCH_WINDOW_MS: a.window,
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
  NOTIFY_ALLOWED_HOSTS: '127.0.0.1',
};
const workers: ChildProcess[] = Array.from({ length: WORKERS }, () =>
  spawn(process.execPath, WORKER_ARGS, {
    cwd: root,
    env,
    stdio: 'inherit',
  }),
);
let peakRssMb = 0;
const rssTimer = setInterval(() => {
  for (const w of workers) {
    try {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${w.pid}/status`, 'utf8'));
      if (hwm) peakRssMb = Math.max(peakRssMb, Number(hwm[1]) / 1024);
    } catch {}
  }
}, 200);
await sleep(2_500); // let the workers connect
log(
  `workload: ${N} events (${unique} unique) over ${U} users, ${keys} keys; QPS ${QPS}, latency ${a.latency} ms`,
);

// Ingest.
const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
const producer = createProducer({ connection: redis, prefix, maxBufferEvents: EVENTS_PER_JOB });
const t0 = performance.now();
const decrPath = '/market/service/user/remaintimes/decr/';
let steadyCalls: { calls: number; sec: number } | undefined;
if (RATE === undefined) {
  for (let i = 0; i < N; i += 5_000) await producer.recordMany(events.slice(i, i + 5_000));
} else {
  // Steady: every 100 ms the events due by then. Calls are counted from the end of
  // the first batching window (when keys first have work) to the end of sending.
  const tick = 100;
  let sent = 0;
  let callsAtStart: { calls: number; at: number } | undefined;
  while (sent < N) {
    const due = Math.min(N, Math.round(((performance.now() - t0) / 1000) * RATE));
    if (due > sent) {
      await producer.recordMany(events.slice(sent, due));
      sent = due;
    }
    if (!callsAtStart && performance.now() - t0 > Number(a.window) + 2_000) {
      callsAtStart = { calls: sim.state().calls.byPath[decrPath] ?? 0, at: performance.now() };
    }
    await sleep(tick);
  }
  if (callsAtStart) {
    steadyCalls = {
      calls: (sim.state().calls.byPath[decrPath] ?? 0) - callsAtStart.calls,
      sec: (performance.now() - callsAtStart.at) / 1000,
    };
  }
}
await producer.flush();
const ingestSec = (performance.now() - t0) / 1000;
log(`ingested in ${ingestSec.toFixed(2)} s (${Math.round(N / ingestSec)} events/s)`);

// Wait until every unique event is charged.
const db = new pg.Client({ connectionString: databaseUrl });
await db.connect();
// Probes the batch table (thousands of rows) every 100 ms, and counts the event table
// until every unique event is in it (for ledgerSec): that count is a load on the
// database during ingestion, and it is in the figures (they err on the slow side).
let recordedSec: number | undefined;
for (;;) {
  const r = await db.query<{ charged: number; recorded: boolean }>(
    `SELECT coalesce(sum(event_count) FILTER (WHERE status = 'charged'), 0)::int AS charged,
            ${recordedSec === undefined ? `(SELECT count(*) FROM usage_event) >= ${unique}` : 'true'} AS recorded
     FROM charge_batch WHERE parent_id IS NULL`,
  );
  if (recordedSec === undefined && r.rows[0]!.recorded) recordedSec = (performance.now() - t0) / 1000;
  if (r.rows[0]!.charged >= unique) break;
  if ((performance.now() - t0) / 1000 > 600) throw new Error('not all events charged within 600 s');
  await sleep(100);
}
const elapsedSec = (performance.now() - t0) / 1000;
// --webhooks: every charged batch's batch.charged delivered.
let notifiedSec: number | undefined;
let hookAttempts: { deliveries: number; attempts: number; errors: string[] | null } | undefined;
if (a.webhooks) {
  const want = Number(
    (await db.query(`SELECT count(*)::int AS n FROM charge_batch WHERE status = 'charged'`)).rows[0].n,
  );
  while (hooks.charged < want) {
    if ((performance.now() - t0) / 1000 > 600)
      throw new Error('not all batch.charged delivered within 600 s');
    await sleep(50);
  }
  notifiedSec = (hooks.lastAt - t0) / 1000;
  await sleep(1_000); // a late duplicate (at least once) still counts
  const r = await db.query(
    `SELECT count(*)::int AS deliveries, sum(attempts)::int AS attempts,
            (array_agg(last_error) FILTER (WHERE attempts > 1))[1:3] AS errors
     FROM notification_delivery`,
  );
  hookAttempts = r.rows[0];
}
clearInterval(rssTimer);

const state = sim.state();
let exact = true;
for (const [openId, want] of expected) {
  const got = state.balances.find((b) => b.openId === openId)?.deducted ?? 0;
  if (got !== want) exact = false;
}
const ledger = await db.query<{ charged: string; p50: number; p99: number }>(`
  SELECT sum(count)::text AS charged,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
  FROM (SELECT e.count, extract(epoch FROM b.finished_at - e.enqueued_at) * 1000 AS ms
        FROM charge_batch b JOIN usage_event e
          ON e.key_id = b.key_id AND e.seq BETWEEN b.first_seq AND b.last_seq
        WHERE b.status = 'charged' AND b.parent_id IS NULL) t`);
const totalExpected = [...expected.values()].reduce((x, y) => x + y, 0);
if (Number(ledger.rows[0]!.charged) !== totalExpected) exact = false;
const douyinCalls = state.calls.byPath['/market/service/user/remaintimes/decr/'] ?? 0;

for (const w of workers) w.kill('SIGTERM');
await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
await producer.close();

// Baseline: the naive way, one call per event, same simulator settings and QPS.
const baseN = Math.min(Number(a['baseline-events']), unique);
sim.reset();
sim.setFaults({ qps: QPS, latencyMs: Number(a.latency) });
for (const openId of users)
  sim.setBalance({ openId, serviceId: 'svc', serviceModeId: 'mode', remaining: 1e9 });
const sample = [...new Set(events)].slice(0, baseN); // duplicates repeat the same object
const baselineEventsPerSec = await measureNaiveBaseline({
  simUrl: sim.url,
  redis,
  prefix: `${prefix}-baseline`,
  qps: QPS,
  events: sample,
});
redis.disconnect();
await db.end();
await sim.close();
receiver.close();
await services.close();

const endToEndEventsPerSec = Math.round(unique / elapsedSec);
const result = {
  durable: DURABLE,
  mode: RATE === undefined ? 'burst' : 'steady',
  events: N,
  uniqueEvents: unique,
  users: U,
  keys,
  qps: QPS,
  workers: WORKERS,
  elapsedSec: round(elapsedSec),
  ingestEventsPerSec: Math.round(N / ingestSec),
  ledgerSec: round(recordedSec ?? elapsedSec),
  endToEndEventsPerSec,
  limit: { pgInsertEventsPerSec },
  ratio: { endToEndToPgInsert: round(endToEndEventsPerSec / pgInsertEventsPerSec) },
  steady:
    RATE === undefined
      ? undefined
      : {
          rate: RATE,
          durationSec: DURATION,
          callsPerSec: steadyCalls ? round(steadyCalls.calls / steadyCalls.sec) : null,
        },
  douyinCalls,
  rateLimitedAnswers: state.calls.rateLimited,
  maxCallsPerSecond: state.calls.maxPerSecond,
  latencyMs: { p50: Math.round(ledger.rows[0]!.p50), p99: Math.round(ledger.rows[0]!.p99) },
  peakRssMb: Math.round(peakRssMb),
  exact,
  lowerBoundSec: round(keys / QPS),
  baseline: { endToEndEventsPerSec: baselineEventsPerSec, douyinCalls: baseN, events: baseN },
  webhooks: a.webhooks
    ? {
        requests: hooks.received,
        batchChargedReceived: hooks.charged,
        allDeliveredSec: round(notifiedSec!),
        ...hookAttempts!,
      }
    : undefined,
};
if (a.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  log(
    `charged ${unique} unique events in ${result.elapsedSec} s: ${result.endToEndEventsPerSec} events/s end to end`,
  );
  log(`all unique events in the ledger after ${result.ledgerSec} s`);
  log(
    `douyin calls ${douyinCalls} (keys ${keys}; lower bound keys/QPS = ${result.lowerBoundSec} s), rate-limited answers ${result.rateLimitedAnswers}, max calls in 1 s ${result.maxCallsPerSecond}`,
  );
  log(
    `latency enqueue -> charged: p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms; worker peak RSS ${result.peakRssMb} MB`,
  );
  log(
    `ratio to the PostgreSQL insert limit: ${result.ratio.endToEndToPgInsert} (${endToEndEventsPerSec} / ${pgInsertEventsPerSec} rows/s)`,
  );
  if (result.webhooks)
    log(
      `webhooks: ${result.webhooks.requests} requests for ${result.webhooks.deliveries} deliveries (${result.webhooks.attempts} attempts), the last batch.charged ${result.webhooks.allDeliveredSec} s after the first event`,
    );
  if (result.steady)
    log(
      `steady: ${result.steady.callsPerSec} Douyin calls/s at ${RATE} events/s for ${DURATION} s (QPS ${QPS})`,
    );
  log(`exact: ${exact}`);
  log(
    `baseline (one call per event, ${baseN} events): ${result.baseline.endToEndEventsPerSec} events/s, ${baseN} calls`,
  );
}
process.exit(exact ? 0 : 1);

function round(x: number) {
  return Math.round(x * 100) / 100;
}

/** This run's unique events as rows of the insert-limit measurement, EVENTS_PER_JOB at a time. */
function insertLimitChunks(): Iterable<InsertLimitRow[]> {
  // Gathered before the clock starts; each chunk is mapped in the timed loop, as a job's rows are.
  const rows = [...new Set(events)];
  const keyIdOf = new Map(users.map((u, i) => [u, i + 1]));
  return (function* () {
    for (let i = 0; i < rows.length; i += EVENTS_PER_JOB) {
      yield rows
        .slice(i, i + EVENTS_PER_JOB)
        .map((e) => ({ keyId: keyIdOf.get(e.openId)!, eventId: e.eventId, count: e.count }));
    }
  })();
}
