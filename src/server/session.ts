// Operator sign-in. The dashboard uses the session cookie (HttpOnly, SameSite=Strict,
// HMAC-signed, no server-side state); scripts may send HTTP Basic instead. API keys
// never open the operator API. Wrong passwords, by either way, are throttled per
// address (signin-throttle.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Logger } from '../logger.js';
import {
  type Operators,
  parseBasic,
  parseCookies,
  SESSION_COOKIE,
  type SessionSigner,
  sessionCookie,
} from './auth.js';
import { HttpError, parseOr400 } from './errors.js';
import { refuseCrossOrigin } from './origin.js';
import type { SignInThrottle } from './signin-throttle.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in operator (set by requireOperator). */
    operator?: string;
  }
}

export interface SessionDeps {
  operators: Operators;
  sessions: SessionSigner;
  throttle: SignInThrottle;
  logger: Logger;
}

/**
 * The operator of a request: its session cookie, else its Basic credentials. A
 * valid cookie is never throttled (a signed-in operator is not locked out by
 * someone guessing from elsewhere); Basic credentials are checked like a sign-in.
 */
export async function operatorOf(req: FastifyRequest, d: SessionDeps): Promise<string | undefined> {
  const fromCookie = d.sessions.verify(parseCookies(req.headers.cookie)[SESSION_COOKIE]);
  if (fromCookie && d.operators.has(fromCookie)) return fromCookie;
  const basic = parseBasic(req.headers.authorization);
  return basic ? checkPassword(req, d, basic.user, basic.password) : undefined;
}

/** The operator these credentials name, or undefined (a counted failure); 429 while throttled. */
async function checkPassword(
  req: FastifyRequest,
  d: SessionDeps,
  user: string,
  password: string,
): Promise<string | undefined> {
  const retryAfter = await d.throttle.attempt(req.ip);
  if (retryAfter > 0) {
    d.logger.warn({ user, ip: req.ip }, 'operator sign-in refused: too many wrong passwords');
    throw new HttpError(
      429,
      'too_many_attempts',
      `too many wrong passwords from this address; try again in ${retryAfter} s`,
      undefined,
      { 'retry-after': String(retryAfter) },
    );
  }
  const ok = d.operators.verify(user, password);
  if (ok) await d.throttle.succeeded(req.ip);
  else d.logger.warn({ user, ip: req.ip }, 'operator sign-in failed');
  return ok;
}

/** onRequest hook of the operator API. */
export function requireOperator(d: SessionDeps) {
  return async (req: FastifyRequest) => {
    const user = await operatorOf(req, d);
    if (!user)
      throw new HttpError(401, 'unauthorized', 'sign in first (POST /api/session) or use HTTP Basic');
    req.operator = user;
  };
}

export const signInSchema = z.strictObject({
  user: z.string().min(1).max(200),
  password: z.string().min(1).max(1000),
});

export function registerSessionRoutes(app: FastifyInstance, d: SessionDeps): void {
  const secure = (req: FastifyRequest) => req.protocol === 'https';

  // Signing in from another site's form would put the operator in an account of the
  // attacker's choosing: the same origin rule as every other change.
  app.post('/api/session', { onRequest: refuseCrossOrigin }, async (req, reply) => {
    const { user, password } = parseOr400(signInSchema, req.body, 'sign-in');
    const ok = await checkPassword(req, d, user, password);
    if (!ok) throw new HttpError(401, 'unauthorized', 'wrong user or password');
    d.logger.info({ actor: ok, ip: req.ip }, 'dashboard sign-in');
    reply.header('set-cookie', sessionCookie(d.sessions.issue(ok), d.sessions.ttlSec, secure(req)));
    return { user: ok, expiresInSec: d.sessions.ttlSec };
  });

  app.get('/api/session', async (req) => {
    const user = await operatorOf(req, d);
    if (!user) throw new HttpError(401, 'unauthorized', 'not signed in');
    return { user };
  });

  app.delete('/api/session', { onRequest: refuseCrossOrigin }, async (req, reply) => {
    reply.header('set-cookie', sessionCookie('', 0, secure(req)));
    return reply.code(204).send();
  });
}
