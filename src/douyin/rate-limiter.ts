// The deployment-wide limit on Douyin calls. The platform's QPS limit is per
// application, so every worker process shares one limiter in Redis.
//
// We hand-write this instead of using BullMQ's queue limiter because that one
// counts job starts in fixed windows (bursty at window edges, and blind to the
// calls a job makes), while Douyin counts calls. This is GCRA with a burst of one:
// each caller atomically reserves the next free slot and sleeps until it. Slots are
// spaced so that any window of 1000 ms + `jitterToleranceMs` holds at most QPS
// calls: calls delayed unevenly on their way (event loop, network) still arrive
// within the platform's limit. A "too frequent"
// answer pushes every future slot back, slowing the whole deployment down.
import { setTimeout } from 'node:timers/promises';
import type { RedisClient } from '../queue/redis-connection.js';

const reserveScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local maxWait = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > maxWait then return {0, tostring(wait)} end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil((wait + interval) / 1000) + 60000)
return {1, tostring(wait)}
`;

const penalizeScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local target = now + tonumber(ARGV[1])
if tat < target then redis.call('SET', KEYS[1], tostring(target), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 60000) end
return 1
`;

export interface RateLimiterOptions {
  redis: RedisClient;
  /** Redis key holding the next free slot (theoretical arrival time). */
  key: string;
  /** Calls per second for the whole deployment. */
  qps: number;
  /** Uneven delay between a slot and the call's arrival that must not break the limit. Default 80 ms. */
  jitterToleranceMs?: number;
  /** Longest single reservation ahead; beyond it the caller waits and asks again. Default 5000 ms. */
  maxReserveMs?: number;
  /** A caller waking up later than this after its slot takes a new one. Default 20 ms. */
  maxLateMs?: number;
  /** How many times a late caller takes a new slot before it goes anyway. Default 3. */
  maxReslots?: number;
  /** Called with every slot handed out, e.g. to observe the waits in metrics. */
  onAcquire?: (slot: Slot) => void;
}

/** A granted call slot. */
export interface Slot {
  /** When the slot is, on this process's performance.now() clock. */
  at: number;
  /** How long the caller waited for it, in ms. */
  waitedMs: number;
}

export class RateLimiter {
  private readonly intervalUs: number;
  private readonly maxReserveUs: number;

  constructor(private readonly options: RateLimiterOptions) {
    const windowMs = 1_000 + (options.jitterToleranceMs ?? 80);
    this.intervalUs = (windowMs * 1_000) / Math.max(1, options.qps - 1);
    this.maxReserveUs = (options.maxReserveMs ?? 5_000) * 1000;
  }

  /**
   * Waits for this caller's slot and returns it. A caller that wakes up more than
   * `maxLateMs` after its slot (a busy event loop fires timers late, and unevenly)
   * takes a new slot instead, at most `maxReslots` times: a late call would land in
   * the platform's window together with the calls slotted after it.
   * With `leadMs` it returns that long before the slot, for work to do first; the
   * caller then waits for `slot.at` itself.
   */
  async acquire(signal?: AbortSignal, leadMs = 0): Promise<Slot> {
    const started = performance.now();
    const maxLateMs = this.options.maxLateMs ?? 20;
    for (let reslots = 0; ; ) {
      // The slot is at least `wait` after the request left; measuring from here
      // (not from the answer's arrival) counts a late answer as lateness too.
      const sentAt = performance.now();
      const [granted, waitUs] = (await this.options.redis.eval(
        reserveScript,
        1,
        this.options.key,
        this.intervalUs,
        this.maxReserveUs,
      )) as [number, string];
      const waitMs = Number(waitUs) / 1000;
      if (granted === 1) {
        const at = sentAt + waitMs;
        const sleepMs = at - leadMs - performance.now();
        if (sleepMs > 0) await sleep(sleepMs, signal);
        if (performance.now() - at <= maxLateMs || reslots >= (this.options.maxReslots ?? 3)) {
          const slot = { at, waitedMs: performance.now() - started };
          this.options.onAcquire?.(slot);
          return slot;
        }
        reslots++;
        continue;
      }
      // The queue of reservations is long: wait part of it without holding a slot.
      await sleep(Math.min(waitMs - this.maxReserveUs / 1000, 1_000), signal);
    }
  }

  /**
   * For a slot taken with `leadMs`: sleeps until the slot, then returns the check to
   * run right before the request leaves (the client's `beforeSend`). Work done
   * between the two (a query, a token fetch) can make the call late; a late caller
   * takes a fresh slot, by the same rule as `acquire`.
   */
  async until(slot: Slot, signal?: AbortSignal): Promise<(signal?: AbortSignal) => Promise<void>> {
    const early = slot.at - performance.now();
    if (early > 0) await sleep(early, signal);
    const maxLateMs = this.options.maxLateMs ?? 20;
    let at = slot.at;
    return async (callSignal = signal) => {
      for (
        let tries = 0;
        tries < (this.options.maxReslots ?? 3) && performance.now() - at > maxLateMs;
        tries++
      ) {
        at = (await this.acquire(callSignal)).at;
      }
    };
  }

  /** Pushes every caller's next slot at least `ms` into the future. */
  async penalize(ms: number): Promise<void> {
    await this.options.redis.eval(penalizeScript, 1, this.options.key, Math.round(ms * 1000));
  }
}

/** node:timers/promises' setTimeout, rejecting with the signal's own reason (a TimeoutError stays one). */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await setTimeout(ms, undefined, { signal });
  } catch (err) {
    throw signal?.aborted ? signal.reason : err;
  }
}
