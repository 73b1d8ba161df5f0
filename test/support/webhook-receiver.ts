// A real HTTP receiver for the meter's webhooks in tests: records every request
// (headers and the raw body) and answers as the test says (a status, or never).

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** What to answer: a status (and body), a redirect, or no answer at all. */
export type Answer = number | { status: number; body?: string; headers?: Record<string, string> } | 'hang';

export interface Receiver {
  url: string;
  received: Received[];
  /** Decides the answer to the n-th request (0-based) of a path. */
  answer: (n: number, r: Received) => Answer;
  waitFor(count: number, timeoutMs?: number, path?: string): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startReceiver(answer: Receiver['answer'] = () => 200): Promise<Receiver> {
  const seen = new Map<string, number>();
  const hanging = new Set<import('node:http').ServerResponse>();
  const r: Receiver = {
    url: '',
    received: [],
    answer,
    async waitFor(count, timeoutMs = 20_000, path) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = r.received.filter((x) => path === undefined || x.path === path);
        if (got.length >= count) return got;
        if (Date.now() > deadline)
          throw new Error(`receiver got ${got.length} of ${count} requests within ${timeoutMs} ms`);
        await sleep(25);
      }
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec: Received = {
        path: req.url ?? '/',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      const n = seen.get(rec.path) ?? 0;
      seen.set(rec.path, n + 1);
      r.received.push(rec);
      const a = r.answer(n, rec);
      if (a === 'hang') {
        hanging.add(res);
        return;
      }
      const { status, body, headers } = typeof a === 'number' ? { status: a, body: '', headers: {} } : a;
      res.writeHead(status, headers);
      res.end(body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return r;
}
