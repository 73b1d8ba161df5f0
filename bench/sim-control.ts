// The Douyin simulator's control endpoint (/_sim/*, docs/simulator.md), for a
// benchmark that runs the simulator as its own process: set faults, fund users,
// reset, read the state (balances, trades, call counters).
import type { SimulatorFaults, SimulatorState } from '../src/simulator/index.js';

async function call(simUrl: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(new URL(path, simUrl), {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`simulator ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

export const simState = (simUrl: string) => call(simUrl, '_sim/state') as Promise<SimulatorState>;

export const setSimFaults = (simUrl: string, faults: Partial<SimulatorFaults>) =>
  call(simUrl, '_sim/faults', faults);

export const resetSim = (simUrl: string) => call(simUrl, '_sim/reset', {});

/** Remaining times large enough that nobody runs out, in requests under the 1 MiB body limit. */
export async function fundUsers(
  simUrl: string,
  openIds: string[],
  serviceId: string,
  serviceModeId: string,
): Promise<void> {
  for (let i = 0; i < openIds.length; i += 2_000) {
    const part = openIds.slice(i, i + 2_000);
    await call(
      simUrl,
      '_sim/balances',
      part.map((openId) => ({ openId, serviceId, serviceModeId, remaining: 1e9 })),
    );
  }
}
