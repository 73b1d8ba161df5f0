// Real-HTTP helpers for the simulator tests (undici against startSimulator).
import { type Dispatcher, request } from 'undici';
import type { RunningSimulator } from '../../src/simulator/index.js';

export const KEY = 'sim-client-key';
export const SECRET = 'sim-client-secret';
export const DECR = 'market/service/user/remaintimes/decr/';
export const INSERT = 'market/service/user/insert/purchase/info/';
export const DELETE = 'market/service/user/delete/purchase/info/';
export const LIST = 'market/service/user/purchase/list/';

export interface Answer {
  status: number;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: test assertions read arbitrary JSON
  json: any;
}

export interface CallOptions {
  method?: 'GET' | 'POST';
  body?: unknown;
  token?: string;
  headers?: Record<string, string>;
  dispatcher?: Dispatcher;
}

/** One HTTP call; a JSON body is sent with content-type application/json unless headers say otherwise. */
export async function call(sim: RunningSimulator, path: string, o: CallOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  if (o.token) headers['access-token'] = o.token;
  Object.assign(headers, o.headers);
  const res = await request(new URL(path, sim.url), {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers,
    body: o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body),
    dispatcher: o.dispatcher,
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, text, json };
}

export async function getToken(sim: RunningSimulator, secret = SECRET): Promise<string> {
  const a = await call(sim, 'oauth/client_token/', {
    body: { client_key: KEY, client_secret: secret, grant_type: 'client_credential' },
  });
  if (a.json?.data?.error_code !== 0) throw new Error(`token: ${a.text}`);
  return a.json.data.access_token as string;
}

let seq = 0;
export function decrBody(over: Record<string, unknown> = {}) {
  return {
    count: 1,
    is_test_env: false,
    open_id: 'u1',
    out_trade_no: `otn-${process.pid}-${++seq}`,
    service_id: 's1',
    service_mode_id: 'm1',
    ...over,
  };
}

export function purchaseBody(over: Record<string, unknown> = {}) {
  return {
    open_id: 'u1',
    out_trade_no: `p-${process.pid}-${++seq}`,
    period_type: 1,
    purchase_time: 1_700_000_000_000,
    service_id: 's1',
    service_mode_id: 'm1',
    usage_times: 10,
    ...over,
  };
}

/** The business error code of an answer (data.error_code). */
export function code(a: Answer): number | undefined {
  return a.json?.data?.error_code;
}

export function balanceOf(sim: RunningSimulator, openId = 'u1', serviceId = 's1', serviceModeId = 'm1') {
  return sim
    .state()
    .balances.find(
      (b) => b.openId === openId && b.serviceId === serviceId && b.serviceModeId === serviceModeId,
    );
}
