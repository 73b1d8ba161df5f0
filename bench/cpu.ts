// The machine's CPU use between two moments, from /proc/stat: a benchmark reports it
// per phase so that a reader can tell whether the phase was bound by the cores
// (everything shares them here) or waited on something else (the QPS, a hold).
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's CPU times (USER_HZ): 100 on Linux. */
export const USER_HZ = 100;

export interface CpuSample {
  busy: number;
  total: number;
}

/** Jiffies spent busy and in all, over every core since boot; undefined off Linux. */
export function cpuSample(): CpuSample | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const total = fields.reduce((x, y) => x + y, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Share of all cores busy between the two samples (0..1), or null when unknown. */
export function busyShare(from: CpuSample | undefined, to: CpuSample | undefined): number | null {
  if (!from || !to || to.total <= from.total) return null;
  return Math.round(((to.busy - from.busy) / (to.total - from.total)) * 100) / 100;
}

/** Seconds of CPU (all cores together) spent busy between the two samples. */
export function busySeconds(from: CpuSample | undefined, to: CpuSample | undefined): number | null {
  return from && to ? (to.busy - from.busy) / USER_HZ : null;
}
