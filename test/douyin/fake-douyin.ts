// A tiny, independent fake of the Douyin endpoints (node:http, not the project's
// simulator): it records every request (method, path, query, headers, parsed body)
// and answers with whatever the test's handler says. Tokens are issued as tok-1,
// tok-2, ... unless the test overrides the token handler.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  /** Query parameter names in the order sent. */
  queryNames: string[];
  headers: IncomingMessage['headers'];
  rawBody: string;
  body: unknown;
}

export type Reply =
  | { status?: number; json: unknown }
  | { status: number; text: string; contentType?: string }
  | 'destroy'
  | 'hang'
  /** Headers and half a body, then silence. */
  | 'stall-body';

export type Handler = (req: Recorded) => Reply | Promise<Reply>;

let logSeq = 0;

/** A Douyin envelope with a fresh logid. */
export function envelope(code = 0, data: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const logid = `LOG${Date.now()}${String(++logSeq).padStart(6, '0')}`;
  const description = code === 0 ? '' : `error ${code}`;
  return {
    data: { error_code: code, description, ...data },
    extra: {
      error_code: code,
      description,
      sub_error_code: 0,
      sub_description: '',
      logid,
      now: 1683277168,
      ...extra,
    },
  };
}

export interface FakeDouyin {
  url: string;
  port: number;
  requests: Recorded[];
  /** Requests to one path. */
  to(path: string): Recorded[];
  tokenHits(): number;
  /** Answers business paths (default: success envelope). */
  handler: Handler;
  /** Answers /oauth/client_token/ (default: tok-N, expires_in 7200). */
  tokenHandler: Handler;
  /** Forgets requests and restores the default handlers (tokens start again at tok-1). */
  reset(): void;
  close(): Promise<void>;
}

export const TOKEN_PATH = '/oauth/client_token/';

export async function startFakeDouyin(opts: { prefix?: string } = {}): Promise<FakeDouyin> {
  const prefix = opts.prefix ?? '';
  let issued = 0;
  const requests: Recorded[] = [];
  const defaultHandler: Handler = () => ({ json: envelope(0) });
  const defaultTokenHandler: Handler = () => {
    issued++;
    const data = { access_token: `tok-${issued}`, description: '', error_code: 0, expires_in: 7200 };
    return { json: { data, message: 'success' } };
  };
  const fake: FakeDouyin = {
    url: '',
    port: 0,
    requests,
    to: (path) => requests.filter((r) => r.path === `${prefix}${path}`),
    tokenHits: () => requests.filter((r) => r.path === `${prefix}${TOKEN_PATH}`).length,
    handler: defaultHandler,
    tokenHandler: defaultTokenHandler,
    reset: () => {
      requests.length = 0;
      issued = 0;
      fake.handler = defaultHandler;
      fake.tokenHandler = defaultTokenHandler;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const u = new URL(req.url ?? '/', 'http://x');
    let body: unknown;
    try {
      body = rawBody ? JSON.parse(rawBody) : undefined;
    } catch {
      body = rawBody;
    }
    const rec: Recorded = {
      method: req.method ?? '',
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      queryNames: [...u.searchParams.keys()],
      headers: req.headers,
      rawBody,
      body,
    };
    requests.push(rec);
    const reply = await (rec.path === `${prefix}${TOKEN_PATH}` ? fake.tokenHandler : fake.handler)(rec);
    if (reply === 'destroy') {
      req.socket.destroy();
      return;
    }
    if (reply === 'hang') return; // closeAllConnections() ends it
    if (reply === 'stall-body') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"data":{"error_code":0');
      return;
    }
    if ('json' in reply) {
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(reply.json));
    } else {
      res.writeHead(reply.status, { 'content-type': reply.contentType ?? 'text/html' });
      res.end(reply.text);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  fake.port = (server.address() as AddressInfo).port;
  fake.url = `http://127.0.0.1:${fake.port}${prefix}/`;
  return fake;
}
