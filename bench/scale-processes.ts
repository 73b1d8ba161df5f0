// The processes of bench/scale.ts, each started the way it is deployed: the Douyin
// simulator (compiled, `npm run sim`'s entry point), workers (the compiled worker with
// `npm run worker`'s node flags) and servers (through tsx, as `npm start` and the
// compose file run them). Each is waited for until it answers over HTTP.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../src/devservices/process.js';
import { type Child, spawnNode, waitUntilAnswering } from './children.js';

export interface ProcessOptions {
  /** The checkout's root (the processes' working directory). */
  root: string;
  logDir: string;
  /** Told about each child as soon as it is spawned, so that teardown can stop it. */
  started: (c: Child) => void;
}

/** The simulator on a free port, with this QPS limit and latency; its base URL ends with '/'. */
export async function startSimulatorProcess(
  o: ProcessOptions,
  faults: { qps: number; latencyMs: number },
): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const child = spawnNode('simulator', ['dist/workers/simulator.js'], {
    cwd: o.root,
    logDir: o.logDir,
    env: {
      ...process.env,
      SIM_HOST: '127.0.0.1',
      SIM_PORT: String(port),
      SIM_QPS: String(faults.qps),
      SIM_LATENCY_MS: String(faults.latencyMs),
    },
  });
  o.started(child);
  await waitUntilAnswering(child, `${url}_sim/faults`);
  return { child, url };
}

/** `count` workers; each serves /metrics on its own port, which also says it is up. */
export async function startWorkers(
  o: ProcessOptions,
  count: number,
  env: NodeJS.ProcessEnv,
): Promise<{ child: Child; metricsUrl: string }[]> {
  const pkg = JSON.parse(readFileSync(join(o.root, 'package.json'), 'utf8'));
  const args = (pkg.scripts.worker as string).split(/\s+/).slice(1); // drops the leading "node"
  const workers: { child: Child; metricsUrl: string }[] = [];
  for (let w = 0; w < count; w++) {
    const port = await freePort();
    const child = spawnNode(`worker-${w + 1}`, args, {
      cwd: o.root,
      logDir: o.logDir,
      env: { ...env, METRICS_PORT: String(port) },
    });
    o.started(child);
    workers.push({ child, metricsUrl: `http://127.0.0.1:${port}/metrics` });
  }
  await Promise.all(workers.map((w) => waitUntilAnswering(w.child, w.metricsUrl)));
  return workers;
}

/**
 * `count` servers, each on its own port, one after another (the first may build the
 * dashboard, which a second one starting at once would build too).
 */
export async function startServers(
  o: ProcessOptions,
  count: number,
  env: NodeJS.ProcessEnv,
): Promise<{ child: Child; url: string }[]> {
  const servers: { child: Child; url: string }[] = [];
  for (let s = 0; s < count; s++) {
    const port = await freePort();
    const child = spawnNode(`server-${s + 1}`, ['--import', 'tsx', 'workers/server.ts'], {
      cwd: o.root,
      logDir: o.logDir,
      env: { ...env, HOST: '127.0.0.1', PORT: String(port) },
    });
    o.started(child);
    const url = `http://127.0.0.1:${port}`;
    servers.push({ child, url });
    await waitUntilAnswering(child, `${url}/readyz`);
  }
  return servers;
}

/** Events a worker wrote to the ledger and batches it charged, from its /metrics. */
export async function workerFigures(
  metricsUrl: string,
): Promise<{ recorded: number; batchesCharged: number }> {
  const text = await (await fetch(metricsUrl)).text();
  const sum = (name: string, label: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) && l.includes(label))
      .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return {
    recorded: sum('um_events_total', 'result="recorded"'),
    batchesCharged: sum('um_batches_total', 'outcome="charged"'),
  };
}
