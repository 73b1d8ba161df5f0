// Checks a key's balance for balance.low after its charge run settled a batch (the
// balance only falls as the key's events arrive, and they are settled within a
// window or two). The checks run on a queue of their own (`balance-check`, one job
// per key at a time), never inside the charge run: a purchase-list read may wait. The balance is the meter's own (src/balances/balance.ts):
// Douyin's purchase list is read only when the key has no snapshot yet or an order
// arrived after it, through the reads' share of the QPS; otherwise the snapshot
// less what the meter charged since. Nothing is done while no endpoint wants
// balance.low (asked of the database at most once a second).
import { balanceOf, type PurchaseListReader } from '../balances/balance.js';
import { balanceLowWanted, recordBalanceLevel } from '../ledger/balance-low.js';
import type { Sql } from '../ledger/db.js';
import { keyFieldsOf } from '../ledger/keys.js';

/** Snapshots are not re-read for age here: a check must not spend the apps' reads. */
const NEVER_BY_AGE_SEC = 10 * 365 * 86_400;

export class BalanceWatch {
  private wanted: { value: boolean; at: number } | undefined;

  constructor(
    private readonly db: Sql,
    private readonly douyin: PurchaseListReader | undefined,
    private readonly o: { readTimeoutMs?: number; wantedCacheMs?: number } = {},
  ) {}

  /** Whether an enabled endpoint wants balance.low (asked of the database at most once a second). */
  async isWanted(): Promise<boolean> {
    const now = Date.now();
    if (!this.wanted || now - this.wanted.at > (this.o.wantedCacheMs ?? 1_000))
      this.wanted = { value: await balanceLowWanted(this.db), at: now };
    return this.wanted.value;
  }

  /** Checks the key; returns how many balance.low notifications it wrote. */
  async check(keyId: number): Promise<number> {
    if (!(await this.isWanted())) return 0;
    const key = await keyFieldsOf(this.db, keyId);
    if (!key) return 0;
    const b = await balanceOf(this.db, key, {
      maxAgeSec: NEVER_BY_AGE_SEC,
      douyin: this.douyin,
      readTimeoutMs: this.o.readTimeoutMs ?? 3_000,
    });
    if (b.available === null) return 0;
    return recordBalanceLevel(this.db, keyId, b.available, {
      openId: key.openId,
      serviceId: key.serviceId,
      serviceModeId: key.serviceModeId,
      isTestEnv: key.isTestEnv,
      douyinRemaining: b.douyinRemaining,
      asOf: b.asOf?.toISOString() ?? null,
      chargedSince: b.chargedSince,
      pendingUses: b.pendingUses,
    });
  }
}
