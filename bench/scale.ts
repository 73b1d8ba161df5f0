// `npm run bench:scale [-- options]`: the multi-process scale run. Several workers and
// several HTTP servers, each its own process, behind one Redis and one PostgreSQL,
// charge N events over U users against the Douyin simulator (its own process too);
// a load generator sends the events through POST /v1/events, round-robin over the
// servers. It checks that the run was exact (every user deducted exactly what was
// sent, the ledger and Douyin agree batch by batch) and that no second held more
// calls than the QPS, and reports the figures next to a limit measured in the same
// run (PostgreSQL inserting the same rows) and a naive baseline (one call per
// event). Exits 1 if not exact or above the QPS. See docs/performance.md.

import { execSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { UsageEventInput } from '../src/events/schema.js';
import { EVENTS_PER_JOB } from '../src/queue/queues.js';
import { SIMULATOR_PATHS } from '../src/simulator/index.js';
import { measureNaiveBaseline } from './baseline.js';
import { type Child, cpuSeconds, peakRssMb, stopChildren, tail } from './children.js';
import { busySeconds, busyShare, type CpuSample, cpuSample } from './cpu.js';
import { sendEvents } from './http-load.js';
import { type InsertLimitRow, measureInsertLimit } from './insert-limit.js';
import { watchUntilCharged } from './ledger-watch.js';
import { chargeLatency, checkExact, checkQps } from './scale-checks.js';
import { startServers, startSimulatorProcess, startWorkers, workerFigures } from './scale-processes.js';
import { reportLines, type ScaleResult } from './scale-report.js';
import { startBenchServices } from './services.js';
import { fundUsers, resetSim, setSimFaults, simState } from './sim-control.js';

const { values: a } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    users: { type: 'string', default: '10000' },
    workers: { type: 'string', default: '3' },
    servers: { type: 'string', default: '2' },
    qps: { type: 'string', default: '1000' },
    latency: { type: 'string', default: '20' },
    window: { type: 'string', default: '1000' },
    hold: { type: 'string', default: '5000' },
    'per-request': { type: 'string', default: '500' },
    'in-flight': { type: 'string', default: '4' },
    'baseline-events': { type: 'string' }, // default: 5 s of calls at the QPS
    timeout: { type: 'string', default: '1800' },
    'unsafe-fast-db': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const N = Number(a.events);
const U = Number(a.users);
const WORKERS = Number(a.workers);
const SERVERS = Number(a.servers);
const QPS = Number(a.qps);
const PER_REQUEST = Number(a['per-request']);
const TIMEOUT_SEC = Number(a.timeout);
const DURABLE = !a['unsafe-fast-db'];
const settings = {
  qps: QPS,
  simLatencyMs: Number(a.latency),
  batchWindowMs: Number(a.window),
  batchMaxHoldMs: Number(a.hold),
  eventsPerRequest: PER_REQUEST,
  requestsInFlightPerServer: Number(a['in-flight']),
  durable: DURABLE,
};
for (const [k, v] of Object.entries({ N, U, WORKERS, SERVERS, QPS, PER_REQUEST, TIMEOUT_SEC }))
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k.toLowerCase()} must be a positive integer`);
if (PER_REQUEST > 1000) throw new Error('--per-request: POST /v1/events takes at most 1,000 events');

const log = (msg: string) => {
  if (!a.json) process.stdout.write(`${msg}\n`);
};
const round = (x: number) => Math.round(x * 100) / 100;
const root = fileURLToPath(new URL('../', import.meta.url));
const DECR = SIMULATOR_PATHS.decr;

// --- Teardown: every step registers its undo; run in reverse on success, error or Ctrl-C.
const cleanups: (() => Promise<unknown>)[] = [];
const children: Child[] = [];
let stopping = false;
let keepLogs = true; // until the run has passed
/** Workers and servers get this long to finish in-flight work; an aborted run does not wait. */
const grace = { workerMs: 30_000, serverMs: 10_000 };
async function teardown(code: number): Promise<never> {
  if (stopping) return new Promise<never>(() => {}); // the first teardown exits
  stopping = true;
  if (code !== 0) {
    grace.workerMs = 2_000;
    grace.serverMs = 2_000;
  }
  for (const c of cleanups.reverse()) await c().catch((err) => process.stderr.write(`cleanup: ${err}\n`));
  process.exit(code);
}
const interrupted = (code: number) => {
  process.stderr.write(stopping ? '' : 'interrupted: stopping everything…\n');
  void teardown(code);
};
process.on('SIGINT', () => interrupted(130));
process.on('SIGTERM', () => interrupted(143));
// Last resort on an abrupt exit: no child outlives the run.
process.once('exit', () => {
  for (const c of children)
    if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
});

// --- The workload: event i is a pure function of i, so a retried request, the
// insert-limit rows and the baseline all repeat exactly the same events.
const runId = randomBytes(4).toString('hex');
const userOf = (i: number) => (Math.imul(i + 1, 0x9e3779b1) >>> 0) % U;
const countOf = (i: number) => 1 + ((Math.imul(i + 7, 0x85ebca6b) >>> 16) % 3);
const openIdOf = (u: number) => `scale-user-${u}`;
const eventAt = (i: number): UsageEventInput => ({
  eventId: `scale-${runId}-${i}`,
  openId: openIdOf(userOf(i)),
  serviceId: 'svc',
  serviceModeId: 'mode',
  count: countOf(i),
});
const expected = new Map<string, number>();
for (let i = 0; i < N; i++) {
  const u = openIdOf(userOf(i));
  expected.set(u, (expected.get(u) ?? 0) + countOf(i));
}
const keys = expected.size;
const totalUses = [...expected.values()].reduce((x, y) => x + y, 0);
function* insertLimitChunks(): Generator<InsertLimitRow[]> {
  for (let i = 0; i < N; i += EVENTS_PER_JOB) {
    const n = Math.min(EVENTS_PER_JOB, N - i);
    yield Array.from({ length: n }, (_, k) => {
      const e = eventAt(i + k);
      return { keyId: userOf(i + k) + 1, eventId: e.eventId, count: e.count };
    });
  }
}

try {
  const code = await main();
  await teardown(code);
} catch (err) {
  // After an interrupt the run fails as its connections close: nothing to show.
  if (!stopping) {
    process.stderr.write(`bench:scale failed: ${(err as Error).stack ?? err}\n`);
    for (const c of children) process.stderr.write(`--- ${c.name} (${c.logFile}), last lines:\n${tail(c)}\n`);
  }
  await teardown(1);
}

async function main(): Promise<number> {
  // The processes run what is deployed: the compiled worker with its node flags.
  execSync('npm run -s build', { cwd: root, stdio: ['ignore', 2, 2] });
  const logDir = await mkdtemp(join(tmpdir(), 'um-scale-'));
  cleanups.push(async () => {
    if (keepLogs) process.stderr.write(`the processes' logs are kept in ${logDir}\n`);
    else await rm(logDir, { recursive: true, force: true });
  });

  // Services: the given ones (a database is made on them and dropped after), or throwaway ones.
  const services = await startBenchServices({ durable: DURABLE, label: 'scale' });
  cleanups.push(() => services.close());
  const { redisUrl, databaseUrl } = services;
  const prefix = `scale-${runId}`;

  // The limit, before anything else runs: PostgreSQL alone inserting the same rows.
  const pgInsertEventsPerSec = await measureInsertLimit(databaseUrl, insertLimitChunks());
  log(`limit: PostgreSQL inserts these ${N} rows at ${pgInsertEventsPerSec} rows/s (durable: ${DURABLE})`);

  // The simulator, its own process, so that it does not share the load generator's event loop.
  const procs = { root, logDir, started: (c: Child) => children.push(c) };
  const sim = await startSimulatorProcess(procs, { qps: QPS, latencyMs: Number(a.latency) });
  cleanups.push(() => stopChildren([sim.child], grace.serverMs));
  await fundUsers(sim.url, [...expected.keys()], 'svc', 'mode');

  // Every worker and server shares this: one Redis, one database, one Douyin QPS.
  const meterEnv = {
    ...process.env,
    DOUYIN_BASE_URL: sim.url,
    DOUYIN_CLIENT_KEY: 'sim-client-key',
    DOUYIN_CLIENT_SECRET: 'sim-client-secret',
    DOUYIN_QPS: String(QPS),
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    DATABASE_URL: databaseUrl,
    METER_BATCH_WINDOW_MS: a.window,
    METER_BATCH_MAX_HOLD_MS: a.hold,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
  };
  const workerChildren: Child[] = [];
  const serverChildren: Child[] = [];
  cleanups.push(() => stopChildren(workerChildren, grace.workerMs));
  cleanups.push(() => stopChildren(serverChildren, grace.serverMs));
  // Each child goes to `children` (the last-resort kill) and to its group (teardown order).
  const into = (group: Child[]) => ({
    ...procs,
    started: (c: Child) => {
      children.push(c);
      group.push(c);
    },
  });
  const workers = await startWorkers(into(workerChildren), WORKERS, meterEnv);
  const apiKey = `scale-key-${randomBytes(12).toString('hex')}`;
  const servers = await startServers(into(serverChildren), SERVERS, {
    ...meterEnv,
    API_KEYS: apiKey,
    DASHBOARD_USERS: `scale:${randomBytes(8).toString('hex')}`,
    SESSION_SECRET: randomBytes(24).toString('base64'),
  });
  log(
    `workload: ${N} events, ${totalUses} uses, over ${U} users (${keys} keys); ${WORKERS} workers, ${SERVERS} servers`,
  );
  log(
    `settings: QPS ${QPS} (DOUYIN_QPS and the simulator's limit), simulator latency ${a.latency} ms, METER_BATCH_WINDOW_MS ${a.window}, METER_BATCH_MAX_HOLD_MS ${a.hold}; ${PER_REQUEST} events a request, ${a['in-flight']} requests in flight per server`,
  );
  log(`logs of the processes: ${logDir}`);

  // Send, and watch the ledger meanwhile.
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  cleanups.push(() => db.end());
  const progress = { acked: 0 };
  const t0 = performance.now();
  const cpuAtStart = cpuSample();
  const cpuOfChildrenAtStart = children.map((c) => cpuSeconds(c) ?? 0);
  const cpuOfLoadAtStart = process.cpuUsage();
  let cpuAtSendingEnd: CpuSample | undefined;
  let sendError: unknown;
  let sendingDone = false;
  const sending = sendEvents({
    servers: servers.map((s) => s.url),
    apiKey,
    total: N,
    eventAt,
    perRequest: PER_REQUEST,
    inFlightPerServer: Number(a['in-flight']),
    progress,
  }).then(
    (r) => {
      cpuAtSendingEnd = cpuSample();
      sendingDone = true;
      return r;
    },
    (err) => {
      sendError = err;
      return undefined;
    },
  );
  const watched = await watchUntilCharged({
    db,
    total: N,
    t0,
    timeoutSec: TIMEOUT_SEC,
    sendingDone: () => sendingDone,
    checkSender: () => {
      if (sendError) throw sendError;
    },
    progress: log,
    acked: () => progress.acked,
  });
  const elapsedSec = watched.chargedSec;
  const cpuAtEnd = cpuSample();
  const from = watched.atSendingEnd;
  const drainCallsPerSec =
    from && elapsedSec > from.sec ? (watched.batches - from.batches) / (elapsedSec - from.sec) : null;
  const ingest = (await sending)!;
  if (sendError) throw sendError;

  // Verdicts and figures, while every process still runs (their peak RSS is read from /proc).
  const state = await simState(sim.url);
  const exact = await checkExact(db, state, expected, N);
  const qps = checkQps(state, QPS);
  const latencyMs = await chargeLatency(db);
  const cpuSec = Object.fromEntries(
    children.map((c, i) => [c.name, round((cpuSeconds(c) ?? 0) - cpuOfChildrenAtStart[i]!)]),
  );
  const loadCpu = process.cpuUsage(cpuOfLoadAtStart);
  cpuSec['load-generator'] = round((loadCpu.user + loadCpu.system) / 1e6);
  // The rest of the machine's busy time: PostgreSQL, Redis, and anything else running.
  const machineBusy = busySeconds(cpuAtStart, cpuAtEnd);
  if (machineBusy !== null)
    cpuSec.rest = round(machineBusy - Object.values(cpuSec).reduce((s, v) => s + v, 0));
  const rss = Object.fromEntries(children.map((c) => [c.name, peakRssMb(c) ?? null]));
  rss['load-generator'] = Math.round(process.resourceUsage().maxRSS / 1024);
  const perWorker = await Promise.all(workers.map((w) => workerFigures(w.metricsUrl)));
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  cleanups.push(async () => redis.disconnect());
  const redisPeakMb = Math.round(
    Number(/used_memory_peak:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0) / 1024 / 1024,
  );
  const decrCalls = state.calls.byPath[DECR] ?? 0;
  await stopChildren(serverChildren, grace.serverMs);
  await stopChildren(workerChildren, grace.workerMs);

  // The naive baseline on the same simulator settings: one call per event.
  const baseN = Math.min(Number(a['baseline-events'] ?? 5 * QPS), N);
  const sample = Array.from({ length: baseN }, (_, i) => eventAt(i));
  await resetSim(sim.url);
  await setSimFaults(sim.url, { qps: QPS, latencyMs: Number(a.latency) });
  await fundUsers(sim.url, [...new Set(sample.map((e) => e.openId))], 'svc', 'mode');
  const baselineEventsPerSec = await measureNaiveBaseline({
    simUrl: sim.url,
    redis,
    prefix: `${prefix}-baseline`,
    qps: QPS,
    events: sample,
  });

  const endToEndEventsPerSec = Math.round(N / elapsedSec);
  const result: ScaleResult = {
    events: N,
    uses: totalUses,
    users: U,
    keys,
    workers: WORKERS,
    servers: SERVERS,
    settings,
    ingest: {
      eventsPerSec: Math.round(ingest.acked / ingest.sec),
      sec: round(ingest.sec),
      requests: ingest.requests,
      retries: ingest.retries,
      duplicatesReported: ingest.duplicatesReported,
      requestMs: ingest.requestMs,
      perServer: ingest.perServer,
    },
    allInLedgerSec: round(watched.recordedSec ?? elapsedSec),
    allChargedSec: round(elapsedSec),
    chargedAfterIngestSec: round(elapsedSec - ingest.sec),
    callsPerSecAfterIngest: drainCallsPerSec === null ? null : Math.round(drainCallsPerSec),
    cpuBusy: {
      ingest: busyShare(cpuAtStart, cpuAtSendingEnd),
      afterIngest: busyShare(cpuAtSendingEnd, cpuAtEnd),
    },
    lowerBoundAfterIngestSec: round(keys / QPS),
    endToEndEventsPerSec,
    douyinCalls: decrCalls,
    businessCalls: state.calls.total,
    eventsPerCall: round(N / Math.max(1, decrCalls)),
    maxCallsPerSecond: qps.maxCallsPerSecond,
    rateLimitedAnswers: qps.rateLimited,
    replays: state.calls.replays,
    latencyMs,
    cpuSec,
    peakRssMb: rss,
    redisPeakMb,
    perWorker,
    limit: { pgInsertEventsPerSec },
    ratio: {
      endToEndToPgInsert: round(endToEndEventsPerSec / pgInsertEventsPerSec),
      endToEndToBaseline: round(endToEndEventsPerSec / baselineEventsPerSec),
    },
    baseline: { events: baseN, douyinCalls: baseN, endToEndEventsPerSec: baselineEventsPerSec },
    exact: exact.exact,
    withinQps: qps.withinQps,
    problems: exact.problems,
    batchesByStatus: exact.batchesByStatus,
  };
  if (a.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else for (const line of reportLines(result)) log(line);
  keepLogs = !(result.exact && result.withinQps);
  return keepLogs ? 1 : 0;
}
