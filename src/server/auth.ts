// Credentials of the HTTP server: API keys for producers (/v1/events), operator
// accounts for the dashboard (/api/*), and the signed session cookie. Every secret
// comparison is constant-time over fixed-length digests, so neither the length nor
// a matching prefix of a guess shows in the response time.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { HttpError } from './errors.js';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time string equality (compares SHA-256 digests, so lengths may differ). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

export class CredentialsConfigError extends Error {
  override name = 'CredentialsConfigError';
}

/** API_KEYS: keys separated by commas; blanks ignored. */
export function parseApiKeys(spec: string | undefined): string[] {
  const keys = (spec ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
  if (keys.length === 0) throw new CredentialsConfigError('API_KEYS: at least one key is required');
  return keys;
}

/** DASHBOARD_USERS: `user:password` pairs separated by commas (the password may contain ':'). */
export function parseDashboardUsers(spec: string | undefined): Map<string, string> {
  const users = new Map<string, string>();
  for (const part of (spec ?? '').split(',')) {
    const entry = part.trim();
    if (!entry) continue;
    const colon = entry.indexOf(':');
    if (colon <= 0 || colon === entry.length - 1) {
      throw new CredentialsConfigError('DASHBOARD_USERS: each entry must be user:password');
    }
    users.set(entry.slice(0, colon), entry.slice(colon + 1));
  }
  if (users.size === 0)
    throw new CredentialsConfigError('DASHBOARD_USERS: at least one user:password is required');
  return users;
}

/** The token of an `Authorization: Bearer <token>` header, if that is what it is. */
export function parseBearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

/** User and password of an `Authorization: Basic <base64>` header. */
export function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Producers' API keys. */
export class ApiKeys {
  constructor(private readonly keys: readonly string[]) {}

  /** An onRequest hook refusing (401) a request without one of the keys: the /v1 routes. */
  readonly required = async (req: { headers: { authorization?: string } }): Promise<void> => {
    if (!this.check(req.headers.authorization))
      throw new HttpError(401, 'unauthorized', 'a valid API key is required: Authorization: Bearer <key>');
  };

  /** True when the header carries one of the keys. Every key is compared (no early exit). */
  check(authorization: string | undefined): boolean {
    const token = parseBearer(authorization);
    if (token === undefined) return false;
    let ok = false;
    for (const key of this.keys) ok = safeEqual(token, key) || ok;
    return ok;
  }
}

/** Operator accounts of the dashboard. */
export class Operators {
  // Compared against when the user is unknown, so a wrong user name costs the same time.
  private readonly dummy = randomBytes(24).toString('base64');

  constructor(private readonly users: ReadonlyMap<string, string>) {}

  /** The user name when user and password match an account. */
  verify(user: string, password: string): string | undefined {
    const expected = this.users.get(user);
    const ok = safeEqual(password, expected ?? this.dummy);
    return ok && expected !== undefined ? user : undefined;
  }

  /** Whether the account exists (a session of a removed account is refused). */
  has(user: string): boolean {
    return this.users.has(user);
  }
}

export interface SessionOptions {
  /** HMAC key. Default: 32 random bytes, so sessions end when the process restarts. */
  secret?: Buffer;
  /** Lifetime of a session, seconds. Default 12 hours. */
  ttlSec?: number;
}

/** Stateless sessions: `base64url(JSON {u, exp}).base64url(HMAC-SHA256)`. */
export class SessionSigner {
  readonly ttlSec: number;
  private readonly secret: Buffer;

  constructor(o: SessionOptions = {}) {
    this.secret = o.secret ?? randomBytes(32);
    this.ttlSec = o.ttlSec ?? 12 * 3600;
  }

  issue(user: string, nowMs = Date.now()): string {
    const payload = Buffer.from(JSON.stringify({ u: user, exp: Math.floor(nowMs / 1000) + this.ttlSec }));
    const body = payload.toString('base64url');
    return `${body}.${this.sign(body)}`;
  }

  /** The session's user, or undefined when the token is forged, malformed or expired. */
  verify(token: string | undefined, nowMs = Date.now()): string | undefined {
    if (!token) return undefined;
    const dot = token.indexOf('.');
    if (dot <= 0) return undefined;
    const body = token.slice(0, dot);
    if (!safeEqual(token.slice(dot + 1), this.sign(body))) return undefined;
    try {
      const p = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { u?: unknown; exp?: unknown };
      if (typeof p.u !== 'string' || typeof p.exp !== 'number') return undefined;
      return p.exp * 1000 > nowMs ? p.u : undefined;
    } catch {
      return undefined;
    }
  }

  private sign(body: string): string {
    return createHmac('sha256', this.secret).update(body).digest('base64url');
  }
}

export const SESSION_COOKIE = 'um_session';

/** Cookies of a `Cookie` header (first value wins). */
export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (name in out) continue;
    try {
      out[name] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      // A malformed value is ignored rather than failing the request.
    }
  }
  return out;
}

/** The Set-Cookie value of a session (maxAgeSec 0 deletes it). */
export function sessionCookie(token: string, maxAgeSec: number, secure: boolean): string {
  const parts = [
    `${SESSION_COOKIE}=${token}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${maxAgeSec}`,
  ];
  if (secure) parts.push('Secure');
  return parts.join('; ');
}
