// One pino logger factory. Secrets (client_secret, tokens, passwords in URLs) are
// redacted by path wherever they appear in a logged object.
import { type Logger, pino } from 'pino';

export type { Logger };

const secretKeys = [
  'client_secret',
  'clientSecret',
  'DOUYIN_CLIENT_SECRET',
  'access_token',
  'accessToken',
  'token',
  'access-token',
  'authorization',
  'password',
  'API_KEYS',
  'DASHBOARD_USERS',
  'SESSION_SECRET',
  'REDIS_PASSWORD',
  'secret',
];

/** Redaction paths: each secret key at the top level and up to two levels down. */
export const redactPaths = secretKeys.flatMap((k) => {
  const key = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : `["${k}"]`;
  const dot = key.startsWith('[') ? '' : '.';
  return [key, `*${dot}${key}`, `*.*${dot}${key}`];
});

export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    name: options.name,
    redact: { paths: redactPaths, censor: '[redacted]' },
    serializers: { err: pino.stdSerializers.err },
  });
}

/** Hides the password of a connection URL before it is logged or printed. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}
