// The load generator of bench/scale.ts: sends events through POST /v1/events to
// several servers, a fixed number of requests in flight per server, as a producer
// that does not use the SDK would. An event counts as sent only when a server
// acknowledged it (2xx, "accepted" or "duplicate"); on any other answer or a network
// error the same events (same eventIds) go again, to the next server: the ledger
// charges a repeated eventId once, so a retry is always safe.
import { setTimeout as sleep } from 'node:timers/promises';
import type { UsageEventInput } from '../src/events/schema.js';

export interface LoadOptions {
  /** Base URLs of the servers, e.g. http://127.0.0.1:3000 */
  servers: string[];
  apiKey: string;
  /** Events 0..total-1 are sent, each exactly once acknowledged. */
  total: number;
  eventAt(i: number): UsageEventInput;
  /** Events per request (at most 1,000, the API's limit). */
  perRequest: number;
  inFlightPerServer: number;
  /** Attempts of one request before the run gives up. Default 30. */
  maxAttempts?: number;
  /** Updated as requests are acknowledged, for progress lines. */
  progress?: { acked: number };
}

export interface LoadResult {
  acked: number;
  /** Events a server reported as duplicates (only expected after a retried request). */
  duplicatesReported: number;
  requests: number;
  /** Attempts that failed and were sent again, by cause (HTTP status or error name). */
  retries: Record<string, number>;
  /** Events acknowledged by each server, in the order of `servers`. */
  perServer: number[];
  /** Time of the acknowledged requests, ms. */
  requestMs: { p50: number; p99: number };
  sec: number;
}

/** A 2xx answer that did not acknowledge every event: a bug, never retried. */
class UnacknowledgedError extends Error {}

interface IngestAnswer {
  accepted: number;
  duplicates: number;
  rejected: number;
  insufficient: number;
  results: { status: string; errors?: string[] }[];
}

export async function sendEvents(o: LoadOptions): Promise<LoadResult> {
  const requests = Math.ceil(o.total / o.perRequest);
  const maxAttempts = o.maxAttempts ?? 30;
  const perServer = o.servers.map(() => 0);
  const retries: Record<string, number> = {};
  const times: number[] = [];
  let acked = 0;
  let duplicates = 0;
  let next = 0;
  let failed = false; // one lane failing stops the others
  const t0 = performance.now();

  const sendOne = async (home: number, r: number) => {
    const from = r * o.perRequest;
    const events = Array.from({ length: Math.min(o.perRequest, o.total - from) }, (_, k) =>
      o.eventAt(from + k),
    );
    const body = JSON.stringify(events); // the very same body on every attempt
    for (let attempt = 0; ; attempt++) {
      const server = (home + attempt) % o.servers.length;
      const t = performance.now();
      let cause: string;
      try {
        const res = await fetch(`${o.servers[server]}/v1/events`, {
          method: 'POST',
          headers: { authorization: `Bearer ${o.apiKey}`, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(30_000),
        });
        if (res.ok) {
          const answer = (await res.json()) as IngestAnswer;
          if (answer.rejected > 0 || answer.insufficient > 0) {
            const bad = answer.results.find((x) => x.status !== 'accepted' && x.status !== 'duplicate');
            throw new UnacknowledgedError(`events refused by the server: ${JSON.stringify(bad)}`);
          }
          if (answer.accepted + answer.duplicates !== events.length)
            throw new UnacknowledgedError(
              `${answer.accepted + answer.duplicates} of ${events.length} events acknowledged`,
            );
          times.push(performance.now() - t);
          acked += events.length;
          duplicates += answer.duplicates;
          perServer[server]! += events.length;
          if (o.progress) o.progress.acked = acked;
          return;
        }
        await res.arrayBuffer();
        cause = `HTTP ${res.status}`;
      } catch (err) {
        if (err instanceof UnacknowledgedError) throw err;
        cause = (err as Error).name;
      }
      retries[cause] = (retries[cause] ?? 0) + 1;
      if (attempt + 1 >= maxAttempts)
        throw new Error(`request ${r} failed ${maxAttempts} times (last: ${cause})`);
      await sleep(Math.min(2_000, 100 * (attempt + 1)));
    }
  };

  // Each server gets inFlightPerServer lanes; a lane takes the next request when its last one is done.
  await Promise.all(
    Array.from({ length: o.servers.length * o.inFlightPerServer }, async (_, lane) => {
      try {
        while (next < requests && !failed) await sendOne(lane % o.servers.length, next++);
      } catch (err) {
        failed = true;
        throw err;
      }
    }),
  );
  times.sort((x, y) => x - y);
  const pct = (p: number) => Math.round(times[Math.min(times.length - 1, Math.floor(p * times.length))] ?? 0);
  return {
    acked,
    duplicatesReported: duplicates,
    requests,
    retries,
    perServer,
    requestMs: { p50: pct(0.5), p99: pct(0.99) },
    sec: (performance.now() - t0) / 1000,
  };
}
