// Request bodies arrive as raw strings (one catch-all content-type parser) so that a
// malformed body becomes the contract's 2100005 / 10002 answer instead of Fastify's 400.
import type { FastifyRequest } from 'fastify';

export type ParsedBody = { ok: true; value: unknown } | { ok: false; problem: string };

function isJson(req: FastifyRequest): boolean {
  const type = req.headers['content-type'];
  return typeof type === 'string' && type.toLowerCase().startsWith('application/json');
}

/** A JSON body; the content-type must say so, as on the platform. */
export function jsonBody(req: FastifyRequest): ParsedBody {
  if (!isJson(req)) return { ok: false, problem: 'content-type must be application/json' };
  return parse(req.body);
}

/** JSON, or a urlencoded form (accepted by the token endpoint). */
export function jsonOrFormBody(req: FastifyRequest): ParsedBody {
  const type = String(req.headers['content-type'] ?? '').toLowerCase();
  if (type.startsWith('application/x-www-form-urlencoded')) {
    return { ok: true, value: Object.fromEntries(new URLSearchParams(String(req.body ?? ''))) };
  }
  return parse(req.body);
}

/** Control endpoint bodies: JSON, an empty body is `{}`. */
export function controlBody(req: FastifyRequest): ParsedBody {
  const raw = typeof req.body === 'string' ? req.body.trim() : '';
  return raw === '' ? { ok: true, value: {} } : parse(raw);
}

function parse(body: unknown): ParsedBody {
  if (typeof body !== 'string' || body.trim() === '') return { ok: false, problem: 'body must be JSON' };
  try {
    return { ok: true, value: JSON.parse(body) };
  } catch {
    return { ok: false, problem: 'body is not valid JSON' };
  }
}
