// The SDK's balance questions, asked of the meter's server over HTTP with an API
// key (GET /v1/users/:openId/balance): how many uses a user has, and whether a use
// of `count` may be delivered now. The producer itself needs only Redis; the
// balance needs the ledger and Douyin, which the server has.
import { z } from 'zod';

export interface BalanceClientOptions {
  /** The server's base URL, e.g. http://meter.internal:3000 */
  url: string;
  /** One of the server's API_KEYS. */
  apiKey: string;
  /** Time a question may take, ms. Default 5000. */
  timeoutMs?: number;
}

export interface BalanceQuestion {
  isTestEnv?: boolean;
  /** Answer from what the meter has, without reading Douyin. */
  cached?: boolean;
}

const balanceSchema = z.object({
  openId: z.string(),
  serviceId: z.string(),
  serviceModeId: z.string(),
  isTestEnv: z.boolean(),
  douyinRemaining: z.number().nullable(),
  asOf: z.string().nullable(),
  source: z.enum(['webhook', 'purchase_list']).nullable(),
  chargedSince: z.number(),
  pendingUses: z.number(),
  available: z.number().nullable(),
  refreshError: z.string().optional(),
});
export type UserBalance = z.infer<typeof balanceSchema>;

/** The server refused the question or answered something else than a balance. */
export class BalanceRequestError extends Error {
  override name = 'BalanceRequestError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface BalanceClient {
  balance(
    openId: string,
    serviceId: string,
    serviceModeId: string,
    q?: BalanceQuestion,
  ): Promise<UserBalance>;
  /** Whether `count` uses fit in what is available; false when the balance is unknown. */
  canUse(
    openId: string,
    serviceId: string,
    serviceModeId: string,
    count: number,
    q?: BalanceQuestion,
  ): Promise<boolean>;
}

export function createBalanceClient(o: BalanceClientOptions): BalanceClient {
  const base = o.url.replace(/\/+$/, '');
  const client: BalanceClient = {
    async balance(openId, serviceId, serviceModeId, q = {}) {
      const query = new URLSearchParams({ serviceId, serviceModeId });
      if (q.isTestEnv) query.set('isTestEnv', 'true');
      if (q.cached) query.set('cached', '1');
      const res = await fetch(`${base}/v1/users/${encodeURIComponent(openId)}/balance?${query}`, {
        headers: { authorization: `Bearer ${o.apiKey}` },
        signal: AbortSignal.timeout(o.timeoutMs ?? 5_000),
      });
      const body: unknown = await res.json().catch(() => undefined);
      if (!res.ok) {
        const message = (body as { error?: { message?: string } } | undefined)?.error?.message;
        throw new BalanceRequestError(
          `balance: HTTP ${res.status}${message ? `: ${message}` : ''}`,
          res.status,
        );
      }
      const parsed = balanceSchema.safeParse(body);
      if (!parsed.success)
        throw new BalanceRequestError('balance: the server answered something else than a balance');
      return parsed.data;
    },
    async canUse(openId, serviceId, serviceModeId, count, q) {
      const b = await client.balance(openId, serviceId, serviceModeId, q);
      return b.available !== null && b.available >= count;
    },
  };
  return client;
}
