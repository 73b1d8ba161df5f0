// Cross-origin protection of the requests that change something: sign-in, sign-out,
// replays, resolves, the purchase tools. SameSite=Strict keeps the session cookie
// from other sites, but not from a sibling subdomain (same site, other origin), and a
// browser sends a form POST or a body-less fetch POST to any origin without asking.
// So such a request must
//  1. carry a JSON body (`content-type: application/json`): a browser sends that
//     type to another origin only after a CORS preflight, which this server never
//     grants, and a form can only send urlencoded, multipart or text/plain; and
//  2. not be marked by the browser as coming from elsewhere: `Sec-Fetch-Site` other
//     than same-origin, or an `Origin` whose host is not this server's.
// A request with neither header (curl, scripts) passes on rule 1 alone.
// Why a content type rather than a custom header (x-requested-with): every such
// endpoint takes a zod-validated JSON body anyway, so scripts need nothing new, and
// it also shuts out text/plain, which Fastify would otherwise parse.
import type { FastifyRequest } from 'fastify';
import { HttpError } from './errors.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** `application/json`, with or without parameters (charset). */
export function isJsonContentType(value: string | undefined): boolean {
  return /^application\/json\s*(;|$)/i.test((value ?? '').trim());
}

const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** Why the browser says this request comes from another origin; undefined when it does not. */
export function crossOriginReason(req: Pick<FastifyRequest, 'headers' | 'host'>): string | undefined {
  const site = one(req.headers['sec-fetch-site'])?.toLowerCase();
  // 'none' is a request the user started (address bar, bookmark); 'same-site' is a
  // sibling subdomain, exactly what SameSite=Strict does not cover.
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site is ${site}`;
  const origin = one(req.headers.origin);
  if (origin === undefined) return undefined;
  let scheme: string;
  let originHost: string;
  try {
    const u = new URL(origin);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not a web origin');
    scheme = u.protocol;
    originHost = u.host;
  } catch {
    return `Origin ${JSON.stringify(origin)} is not this server`; // 'null' among others
  }
  // The Host as the browser would write it for that scheme (default port left out);
  // with TRUST_PROXY, Fastify takes it from X-Forwarded-Host.
  let host: string | undefined;
  try {
    host = new URL(`${scheme}//${req.host}`).host;
  } catch {
    host = undefined;
  }
  return host === originHost ? undefined : `Origin ${origin} does not match this server (${req.host})`;
}

/**
 * onRequest hook: 403 for a state-changing request from another origin or without
 * a JSON body. DELETE carries no body and is no CORS-simple method (a browser
 * preflights it cross-origin), so it is held to the origin rule only.
 */
export async function refuseCrossOrigin(req: FastifyRequest): Promise<void> {
  if (SAFE_METHODS.has(req.method)) return;
  const reason = crossOriginReason(req);
  if (reason !== undefined) {
    req.log.warn({ method: req.method, url: req.url, reason }, 'cross-origin request refused');
    throw new HttpError(403, 'forbidden', `cross-origin request refused: ${reason}`, {
      reason: 'cross_origin',
    });
  }
  if (req.method !== 'DELETE' && !isJsonContentType(req.headers['content-type'])) {
    throw new HttpError(
      403,
      'forbidden',
      'this request changes something: send a JSON body with content-type: application/json (e.g. {})',
      { reason: 'json_required' },
    );
  }
}
