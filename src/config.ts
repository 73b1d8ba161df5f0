// All configuration comes from the environment (plus an optional .env file) and is
// parsed here, once, with zod. A process states which parts it needs; every missing
// or invalid variable among them is reported in one message.
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseErrorKinds } from './douyin/errors.js';
import { AddressGuard } from './notify/address-guard.js';
import { parseRedisNodes, redisTopologyProblems } from './queue/redis-topology.js';

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max).default(def);

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/** A comma-separated host:port list (Redis Sentinel or Cluster nodes), each entry checked. */
const redisNodes = optionalString.transform((v, ctx) => {
  if (v === undefined) return undefined;
  try {
    return parseRedisNodes(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** Every variable the project reads, with its default. Listed in .env.example and docs/configuration.md. */
export const configSchema = z.object({
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  DOUYIN_BASE_URL: z.url({ protocol: /^https?$/ }).default('https://open.douyin.com/'),
  DOUYIN_CLIENT_KEY: optionalString,
  DOUYIN_CLIENT_SECRET: optionalString,
  /** Whole-call timeout of one Douyin request, ms. */
  DOUYIN_TIMEOUT_MS: int(10_000, 100, 600_000),
  DOUYIN_CONNECT_TIMEOUT_MS: int(5_000, 100, 600_000),
  /** Refresh the shared client_token this many seconds before it expires. */
  DOUYIN_TOKEN_REFRESH_MARGIN_SEC: int(300, 0, 7_000),
  /** Extra error-code mapping, `code=kind` pairs separated by commas (see docs/douyin-client.md). */
  DOUYIN_ERROR_KINDS: optionalString.superRefine((v, ctx) => {
    try {
      parseErrorKinds(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  }),
  /** The platform's call limit for the application, shared by every worker process. */
  DOUYIN_QPS: int(100, 1, 100_000),
  /** The share of DOUYIN_QPS all purchase-list reads together may take (the rest is charging's). */
  DOUYIN_READ_QPS_SHARE: z.coerce.number().min(0.01).max(1).default(0.2),
  /** A balance's Douyin snapshot older than this is read again from the purchase list first. */
  METER_BALANCE_MAX_AGE_SEC: int(300, 0, 86_400 * 30),
  /** reject: an event whose user has not the uses left is refused at the door (HTTP, import). */
  METER_ADMISSION: z.enum(['off', 'reject']).default('off'),
  /** With admission control, what an event of a user whose balance is unknown gets. */
  METER_ADMISSION_UNKNOWN: z.enum(['accept', 'reject']).default('accept'),
  /** An admitted event's uses are held until it is in the ledger, at most this long (a safety net). */
  METER_ADMISSION_HOLD_SEC: int(3_600, 1, 7 * 86_400),
  /** Workers reconcile the keys active since the last run this often (0: never; the CLI still can). At most ~23 days (a timer's limit). */
  METER_RECONCILE_INTERVAL_SEC: int(3_600, 0, 2_000_000),
  /**
   * Where the meter's webhooks may go: when set, only to these addresses, CIDR ranges
   * and host names (private ones included); unset, to public addresses only
   * (docs/notifications.md).
   */
  NOTIFY_ALLOWED_HOSTS: optionalString.transform((v, ctx): string[] => {
    if (v === undefined) return [];
    const entries = v
      .split(',')
      .map((e) => e.trim())
      .filter((e) => e !== '');
    // The guard itself judges each entry, so what is accepted here is what it can hold.
    const bad = entries.flatMap((e) => {
      try {
        new AddressGuard([e]);
        return [];
      } catch (err) {
        return [(err as Error).message];
      }
    });
    if (bad.length > 0) {
      ctx.addIssue({ code: 'custom', message: bad.join('; ') });
      return z.NEVER;
    }
    return entries;
  }),
  /** A failed webhook delivery's first retry comes after about this (half fixed, half random), then doubling up to 1 h. */
  NOTIFY_RETRY_BASE_MS: int(5_000, 10, 3_600_000),
  /** A delivery still failing this long after it was made is given up (3 days). */
  NOTIFY_GIVE_UP_AFTER_SEC: int(259_200, 1, 30 * 86_400),
  /** An endpoint whose deliveries have failed for this long without a success is disabled (24 h). */
  NOTIFY_DISABLE_AFTER_SEC: int(86_400, 1, 30 * 86_400),
  /** Webhook deliveries in flight at once per worker. */
  NOTIFY_CONCURRENCY: int(16, 1, 1_000),
  /**
   * How long Douyin remembers an out_trade_no (one month). Past it the same call
   * deducts again, so nothing re-sends a batch whose first attempt is older than
   * 90% of this; such a batch waits for an operator's `batches resolve`.
   */
  DOUYIN_IDEMPOTENCY_WINDOW_SEC: int(2_592_000, 2, 10 * 365 * 86_400),

  /** A single Redis. Empty counts as unset (`REDIS_URL=` in an env file, beside REDIS_SENTINELS say). */
  REDIS_URL: z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z
      .string()
      .regex(/^rediss?:\/\/\S*$/, 'must be a redis:// or rediss:// URL')
      .default('redis://127.0.0.1:6379'),
  ),
  /** Prefix of every Redis key the meter writes (queues, token cache, limiter). */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,40}$/)
    .default('usage-meter'),
  /** Instead of REDIS_URL: the sentinels (host:port, comma-separated) that know the master (docs/redis.md). */
  REDIS_SENTINELS: redisNodes,
  /** The master name the sentinels monitor; required with REDIS_SENTINELS. */
  REDIS_SENTINEL_NAME: optionalString.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,100}$/, 'letters, digits, _ . - only')
      .optional(),
  ),
  /** Instead of REDIS_URL: some nodes of a Redis Cluster (host:port, comma-separated); the others are discovered. */
  REDIS_CLUSTER_NODES: redisNodes,
  /** Password of the data nodes (the Sentinel-managed master and replicas, or the cluster's nodes). Never logged. */
  REDIS_PASSWORD: optionalString,
  /**
   * Events are acknowledged to a producer only once this many replicas have them
   * (Redis WAIT after the write); 0: once the primary has them (docs/redis.md).
   */
  REDIS_WAIT_REPLICAS: int(0, 0, 100),
  /** How long an acknowledgement waits for those replicas before it fails (the producer retries). */
  // At most 5 s: well inside POST /v1/events' 10 s budget, which WAITs queue up in.
  REDIS_WAIT_TIMEOUT_MS: int(1_000, 1, 5_000),
  DATABASE_URL: optionalString,
  DATABASE_POOL_SIZE: int(20, 1, 200),

  METER_BATCH_WINDOW_MS: int(1_000, 0, 3_600_000),
  /**
   * While a key's events keep arriving (the newest within half a window), its batch
   * waits, at most this long after its oldest pending event: a burst costs one call.
   */
  METER_BATCH_MAX_HOLD_MS: int(5_000, 0, 3_600_000),
  METER_BATCH_MAX_EVENTS: int(10_000, 1, 1_000_000),
  METER_BATCH_MAX_COUNT: int(2_147_483_647, 1, 2_147_483_647),
  METER_RETRY_BASE_MS: int(500, 1, 3_600_000),
  METER_RETRY_MAX_MS: int(60_000, 1, 86_400_000),
  /** Seconds a batch is retried before it goes dead; at most half the idempotency window. */
  METER_RETRY_DEADLINE_SEC: int(86_400, 1, 30 * 86_400),
  METER_INSUFFICIENT_POLICY: z.enum(['reject', 'partial']).default('reject'),
  METER_INGEST_CONCURRENCY: int(8, 1, 256),
  /** Batching keys whose ids a worker keeps in memory (LRU): bounds memory whatever the number of users. */
  METER_KEY_CACHE_SIZE: int(100_000, 1, 10_000_000),
  METER_CHARGE_CONCURRENCY: int(256, 1, 4_096),
  /**
   * Seconds after which the worker considers a stalled (crashed) job abandoned; also a
   * charge run's lease on its key. At least DOUYIN_TIMEOUT_MS + 1 s.
   */
  METER_STALL_SEC: int(15, 2, 3_600),
  /**
   * Days the ledger keeps events (and settled batches, finished notifications,
   * rejected events): older months are dropped daily once nothing in them can
   * change (docs/retention.md). At least 35: Douyin's idempotency window is a
   * month, and deduplication by eventId lasts exactly as long as this.
   */
  METER_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .max(100_000)
    .min(
      35,
      "must be at least 35: Douyin's idempotency window is a month, and a batch's events must outlive it",
    )
    .default(400),
  METRICS_PORT: int(0, 0, 65_535),

  PORT: int(3_000, 0, 65_535),
  HOST: z.string().default('127.0.0.1'),
  API_KEYS: optionalString,
  DASHBOARD_USERS: optionalString,
  /**
   * Key that signs operator sessions. Set the same one on every server to share
   * sessions across them and keep them over a restart; unset, each process draws its own.
   */
  SESSION_SECRET: optionalString.pipe(
    z.string().min(32, 'at least 32 characters (e.g. openssl rand -base64 32)').optional(),
  ),
  /** Wrong operator passwords allowed per client address per window. */
  SIGNIN_MAX_FAILURES: int(10, 1, 1_000_000),
  SIGNIN_WINDOW_SEC: int(900, 1, 86_400),
  /**
   * Which proxies' X-Forwarded-For to believe for the client address (the sign-in
   * throttle counts per address): a hop count (`1`: the one proxy in front), or the
   * proxies' addresses/CIDRs separated by commas. `true` (believe anyone) is refused:
   * a client could then name a fresh address for every guess. Default: none.
   */
  TRUST_PROXY: optionalString.transform((v, ctx): false | number | string[] => {
    if (v === undefined || v.toLowerCase() === 'false' || v === '0') return false;
    if (/^\d+$/.test(v)) return Number(v);
    if (v.toLowerCase() === 'true') {
      ctx.addIssue({
        code: 'custom',
        message: "true would believe any client; give a hop count or the proxies' addresses",
      });
      return z.NEVER;
    }
    const entries = v.split(',').map((e) => e.trim());
    const bad = entries.filter((e) => !isProxyAddress(e));
    if (bad.length > 0) {
      ctx.addIssue({ code: 'custom', message: `not an IP address or CIDR: ${bad.join(', ')}` });
      return z.NEVER;
    }
    return entries;
  }),
});

export type Config = z.infer<typeof configSchema>;

/** Parts of the configuration a process can insist on. */
export type ConfigNeed = 'douyin' | 'database' | 'server';

const required: Record<ConfigNeed, (keyof Config)[]> = {
  douyin: ['DOUYIN_CLIENT_KEY', 'DOUYIN_CLIENT_SECRET'],
  database: ['DATABASE_URL'],
  server: ['API_KEYS', 'DASHBOARD_USERS'],
};

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment. Throws ConfigError naming every bad variable. */
export function loadConfig(needs: ConfigNeed[] = [], env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = configSchema.safeParse(env);
  const problems: string[] = [];
  // `KEY=   # note` in an env file is read by docker compose as the value "# note".
  for (const name of Object.keys(configSchema.shape)) {
    if (/^#\s/.test(env[name]?.trim() ?? ''))
      problems.push(`${name}: looks like a comment, not a value (put comments on a line of their own)`);
  }
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.')}: ${issue.message}`);
  } else if (parsed.data.METER_RETRY_DEADLINE_SEC > parsed.data.DOUYIN_IDEMPOTENCY_WINDOW_SEC / 2) {
    // Retries must end well inside the window in which Douyin still deduplicates them.
    problems.push(
      `METER_RETRY_DEADLINE_SEC: ${parsed.data.METER_RETRY_DEADLINE_SEC} is more than half of DOUYIN_IDEMPOTENCY_WINDOW_SEC (${parsed.data.DOUYIN_IDEMPOTENCY_WINDOW_SEC})`,
    );
  }
  // One Redis, a Sentinel-managed one or a cluster: never a guess between two.
  if (parsed.success) problems.push(...redisTopologyProblems(parsed.data, env));
  if (parsed.success && parsed.data.METER_STALL_SEC * 1000 < parsed.data.DOUYIN_TIMEOUT_MS + 1_000) {
    // A charge run's lease lasts METER_STALL_SEC; a call leaves only with its whole
    // timeout of lease left, so no other run can take the key over while it is out.
    problems.push(
      `METER_STALL_SEC: ${parsed.data.METER_STALL_SEC} s must be at least DOUYIN_TIMEOUT_MS (${parsed.data.DOUYIN_TIMEOUT_MS} ms) + 1 s`,
    );
  }
  // A missing required variable is named even when another one failed to parse.
  const given = (name: keyof Config) =>
    parsed.success ? parsed.data[name] !== undefined : (env[name]?.trim() ?? '') !== '';
  for (const need of needs) {
    for (const name of required[need]) {
      if (!given(name)) problems.push(`${name}: required (needed for ${need})`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return parsed.data as Config;
}

/** Loads .env (if present) into process.env without overriding what is set. */
export async function loadDotenv(): Promise<void> {
  const dotenv = await import('dotenv');
  dotenv.config({ quiet: true });
}

/** For process entry points: parse or print the one clear message and exit 2. */
export async function configOrExit(needs: ConfigNeed[] = []): Promise<Config> {
  await loadDotenv();
  try {
    return loadConfig(needs);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** An IP address or CIDR (what proxy-addr, behind fastify's trustProxy, accepts). */
function isProxyAddress(entry: string): boolean {
  const [address = '', bits, ...rest] = entry.split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (version === 4 ? 32 : 128);
}
