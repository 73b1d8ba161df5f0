// HTTP to the platform over one keep-alive undici Pool per origin. Every
// transport failure becomes a DouyinError: 'timeout' when no (complete) answer
// came in time, 'network' for everything on the socket (reset, refused, closed,
// connect timeout). Bodies and headers are never put in errors (they hold secrets).
import { Pool } from 'undici';
import type { HttpAnswer } from './envelope.js';
import { DouyinError } from './errors.js';

export interface TransportOptions {
  /** e.g. 'https://open.douyin.com/'; a path prefix is kept, the trailing slash is optional. */
  baseUrl: string;
  /** Backstop for headers and body, ms (the caller's AbortSignal carries the real deadline). Default 10000. */
  timeoutMs?: number;
  /** Default 5000. */
  connectTimeoutMs?: number;
  /** Pool size. Default 128. */
  connections?: number;
}

export interface TransportRequest {
  method: 'GET' | 'POST';
  /** Path under the base URL, starting with '/'. */
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
  /** Aborts the request; when it fires the failure is a 'timeout'. */
  signal: AbortSignal;
}

const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

export class HttpTransport {
  private readonly pool: Pool;
  private readonly basePath: string;

  constructor(o: TransportOptions) {
    const base = new URL(o.baseUrl);
    this.basePath = base.pathname.replace(/\/+$/, '');
    const timeoutMs = o.timeoutMs ?? 10_000;
    this.pool = new Pool(base.origin, {
      connections: o.connections ?? 128,
      connect: { timeout: o.connectTimeoutMs ?? 5_000 },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
  }

  /** Sends one request and reads the whole body; throws DouyinError ('network' | 'timeout'). */
  async request(r: TransportRequest): Promise<HttpAnswer> {
    const qs = r.query ? `?${new URLSearchParams(r.query).toString()}` : '';
    try {
      const res = await this.pool.request({
        method: r.method,
        path: `${this.basePath}${r.path}${qs}`,
        headers: { accept: 'application/json', 'content-type': 'application/json', ...r.headers },
        body: r.body === undefined ? undefined : JSON.stringify(r.body),
        signal: r.signal,
      });
      const text = await res.body.text();
      return { status: res.statusCode, body: parseJson(text) };
    } catch (err) {
      throw transportError(err, r.signal.aborted);
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

function parseJson(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * A transport failure as a DouyinError. `aborted`: our deadline (or the caller's
 * signal) fired. undici's headers/body timeouts are 'timeout'; its connect timeout
 * is 'network' (nothing was sent, like a refused connection).
 */
export function transportError(err: unknown, aborted: boolean): DouyinError {
  if (err instanceof DouyinError) return err;
  const e = (err ?? {}) as { code?: unknown; name?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const message = typeof e.message === 'string' ? e.message : String(err);
  if (aborted || (code !== undefined && TIMEOUT_CODES.has(code)) || name === 'TimeoutError') {
    return new DouyinError({ kind: 'timeout', description: 'no answer in time', cause: err });
  }
  return new DouyinError({ kind: 'network', description: `${code ?? name}: ${message}`, cause: err });
}
