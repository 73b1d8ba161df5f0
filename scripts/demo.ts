// `npm run demo`: the whole meter on one machine, against the Douyin simulator.
// Starts Redis and PostgreSQL (throwaway, unless REDIS_URL / DATABASE_URL are set),
// migrates, starts the simulator with a few faults, a worker (child process) and the
// server (this process, on PORT, default 3000), seeds five users, and sends ~50
// events/s through POST /v1/events. Prints the dashboard URL and the sign-in.
// Ctrl-C stops everything and removes what it started.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, loadDotenv } from '../src/config.js';
import { migrate } from '../src/db/migrate.js';
import { startPostgres } from '../src/devservices/postgres.js';
import { startRedis } from '../src/devservices/redis.js';
import { createLogger, maskUrl } from '../src/logger.js';
import { type RunningServer, startServer } from '../src/server/start.js';
import { type RunningSimulator, startSimulator } from '../src/simulator/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string) => process.stdout.write(`[demo] ${line}\n`);

await loadDotenv();
const env = process.env;
const eventsPerSec = Number(env.DEMO_EVENTS_PER_SEC ?? 50);
const cleanups: (() => Promise<unknown>)[] = [];
let stopping = false;
let stopRequestedAt = 0;

async function stopAll(code: number): Promise<never> {
  if (stopping) {
    // tsx relays the terminal's Ctrl-C, so one press can arrive twice: only a
    // second press a moment later forces the exit.
    if (Date.now() - stopRequestedAt > 2_000) {
      say('forced exit');
      process.exit(code);
    }
    return new Promise<never>(() => {});
  }
  stopping = true;
  stopRequestedAt = Date.now();
  say('stopping…');
  for (const c of cleanups.reverse()) await c().catch((err) => say(`cleanup: ${(err as Error).message}`));
  say('stopped');
  process.exit(code);
}
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

try {
  await main();
} catch (err) {
  say(`failed: ${err instanceof ConfigError ? err.message : ((err as Error).stack ?? String(err))}`);
  await stopAll(1);
}

async function main() {
  // --- Redis and PostgreSQL
  let redisUrl = env.REDIS_URL;
  let databaseUrl = env.DATABASE_URL;
  if (!redisUrl) {
    const redis = await startRedis();
    cleanups.push(() => redis.destroy());
    redisUrl = redis.url;
    say(`started Redis at ${redisUrl}`);
  }
  if (!databaseUrl) {
    const pg = await startPostgres();
    cleanups.push(() => pg.destroy());
    databaseUrl = pg.url;
    say(`started PostgreSQL at ${maskUrl(databaseUrl)}`);
  }
  const migrated = await migrate(databaseUrl);
  say(`database migrated (${migrated.applied.length} applied, ${migrated.alreadyApplied.length} already)`);

  // --- the Douyin simulator, with some of the trouble the real one has
  const clientKey = 'demo-client-key';
  const clientSecret = randomBytes(12).toString('hex');
  const sim: RunningSimulator = await startSimulator({
    clientKey,
    clientSecret,
    faults: { busyRate: 0.05, appliedButLostRate: 0.02, latencyMs: 20, latencyJitterMs: 20, qps: 100 },
  });
  cleanups.push(() => sim.close());
  say(`Douyin simulator at ${sim.url} (busy 5%, applied-but-lost 2%, 20-40 ms, 100 QPS)`);

  const users = ['demo-alice', 'demo-bob', 'demo-carol', 'demo-dave', 'demo-erin'];
  const modes = ['basic', 'pro'];
  for (const [i, openId] of users.entries()) {
    for (const serviceModeId of modes) {
      // demo-erin runs out after a minute or so: the dashboard shows insufficient batches too.
      const remaining = i === users.length - 1 ? 1_500 : 10_000_000;
      sim.setBalance({ openId, serviceId: 'demo-service', serviceModeId, remaining });
    }
  }

  // --- credentials: the configured ones, or fresh ones printed below
  const apiKey = env.API_KEYS?.split(',')[0]?.trim() || `demo-key-${randomBytes(8).toString('hex')}`;
  const dashboardUsers = env.DASHBOARD_USERS?.trim() || `demo:${randomBytes(6).toString('hex')}`;
  const meterEnv: Record<string, string> = {
    REDIS_URL: redisUrl,
    DATABASE_URL: databaseUrl,
    REDIS_PREFIX: env.REDIS_PREFIX ?? 'usage-meter-demo',
    DOUYIN_BASE_URL: sim.url,
    DOUYIN_CLIENT_KEY: clientKey,
    DOUYIN_CLIENT_SECRET: clientSecret,
    DOUYIN_QPS: '100',
    METER_BATCH_WINDOW_MS: env.METER_BATCH_WINDOW_MS ?? '1000',
    METER_RETRY_BASE_MS: env.METER_RETRY_BASE_MS ?? '200',
    METER_RETRY_MAX_MS: env.METER_RETRY_MAX_MS ?? '5000',
  };

  // --- the worker, as its own process (as in production)
  const workerLog = join(tmpdir(), `usage-meter-demo-worker-${process.pid}.log`);
  const worker = startWorker({ ...meterEnv, LOG_LEVEL: env.LOG_LEVEL ?? 'info' }, workerLog);
  say(`worker started (pid ${worker.pid}); its log: ${workerLog}`);

  // --- the server, here
  const config = loadConfig(['database', 'server', 'douyin'], {
    ...env,
    ...meterEnv,
    API_KEYS: env.API_KEYS?.trim() || apiKey,
    DASHBOARD_USERS: dashboardUsers,
    PORT: env.PORT?.trim() || '3000',
    HOST: env.HOST?.trim() || '127.0.0.1',
  });
  const server: RunningServer = await startServer({
    config,
    logger: createLogger({ level: env.DEMO_SERVER_LOG_LEVEL ?? 'warn', name: 'server' }),
  });
  cleanups.push(() => server.close());
  // Douyin's order webhook, from the simulator to this server, checked like the console does.
  sim.setSettings({ webhookUrl: `${server.url}/webhooks/douyin` });
  const urlCheck = await sim.verifyWebhook();
  say(
    `Douyin order webhooks -> ${server.url}/webhooks/douyin (URL check ${urlCheck.ok ? 'passed' : `failed: ${urlCheck.error}`})`,
  );

  const [user, ...pw] = dashboardUsers.split(',')[0]!.split(':');
  say('');
  say(`dashboard:  ${server.url}/`);
  say(`sign in as: ${user} / ${pw.join(':')}`);
  say(`ingest:     curl -H 'Authorization: Bearer ${apiKey}' -H 'content-type: application/json' \\`);
  say(
    `              -d '{"eventId":"e-1","openId":"demo-alice","serviceId":"demo-service","serviceModeId":"basic","count":1}' \\`,
  );
  say(`              ${server.url}/v1/events`);
  say(`sending ~${eventsPerSec} events/s; Ctrl-C stops everything`);
  say('');

  // --- a steady stream of events
  const perTick = Math.max(1, Math.round(eventsPerSec / 5));
  let seq = 0;
  let accepted = 0;
  let failed = 0;
  const runId = randomBytes(3).toString('hex');
  const tick = setInterval(async () => {
    const events = Array.from({ length: perTick }, () => {
      seq += 1;
      return {
        eventId: `demo-${runId}-${seq}`,
        openId: users[Math.floor(Math.random() * users.length)]!,
        serviceId: 'demo-service',
        serviceModeId: modes[seq % 7 === 0 ? 1 : 0]!,
        count: 1 + Math.floor(Math.random() * 3),
        attributes: { feature: seq % 2 ? 'search' : 'export' },
      };
    });
    try {
      const res = await fetch(`${server.url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(events),
      });
      if (res.status === 202) accepted += ((await res.json()) as { accepted: number }).accepted;
      else failed += events.length;
    } catch {
      failed += events.length;
    }
  }, 200);
  cleanups.push(async () => clearInterval(tick));

  const report = setInterval(() => {
    const st = sim.state();
    const deducted = st.balances.reduce((a, b) => a + b.deducted, 0);
    say(
      `events accepted ${accepted}${failed ? ` (failed ${failed})` : ''} · Douyin deductions ${st.trades.length} (${deducted} uses) · calls ${st.calls.total}, busy ${st.calls.busy}, lost answers ${st.calls.appliedButLost}`,
    );
  }, 10_000);
  cleanups.push(async () => clearInterval(report));

  async function tail(file: string) {
    const text = await readFile(file, 'utf8').catch(() => '');
    return text.split('\n').slice(-15).join('\n');
  }

  function startWorker(workerEnv: Record<string, string>, logFile: string): ChildProcess {
    const out = createWriteStream(logFile);
    const child = spawn(process.execPath, ['--import', 'tsx', 'workers/worker.ts'], {
      cwd: root,
      env: { ...process.env, ...workerEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    child.once('exit', async (code, signal) => {
      if (stopping) return;
      say(
        `the worker exited (code ${code}, signal ${signal}); last lines of ${logFile}:\n${await tail(logFile)}`,
      );
      await stopAll(1);
    });
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
          child.once('exit', () => {
            clearTimeout(kill);
            out.end();
            resolve();
          });
          child.kill('SIGTERM');
        }),
    );
    return child;
  }
}
