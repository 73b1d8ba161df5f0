// Admission control (METER_ADMISSION=reject): an event whose key's available uses
// are below its count is refused at the door (HTTP, import, the SDK through the
// server) and never enqueued. Per key: the purchase list is read first when the
// snapshot is stale; then, in one transaction under the key's admission lock, the
// balance (balance.ts) less the uses held for admitted events not yet in the
// ledger; each event is admitted if it fits in what is left, and held until it is
// in the ledger (one hold per event: a retried event is held once). So two
// concurrent requests can never both spend the same remaining uses. A balance Douyin cannot tell (never known, and
// the read failed) follows METER_ADMISSION_UNKNOWN. Test-mode keys are admitted:
// test-mode calls deduct nothing.
import type { UsageEvent } from '../events/schema.js';
import { addHolds, heldUses, lockKeyAdmission } from '../ledger/admission-holds.js';
import type { BalanceKey } from '../ledger/balance-snapshots.js';
import type { Ledger } from '../ledger/pg-ledger.js';
import { balanceOf, type PurchaseListReader } from './balance.js';

/** Keys of one request admitted at the same time (each may read Douyin, each holds a connection). */
const KEYS_AT_ONCE = 4;
/** A request's admission budget, ms: well inside the server's 10 s answer. */
export const ADMISSION_BUDGET_MS = 5_000;

export interface AdmissionOptions {
  /** What to do when the balance is unknown (METER_ADMISSION_UNKNOWN). */
  unknown: 'accept' | 'reject';
  /** The longest an admitted event's hold counts if it never reaches the ledger (METER_ADMISSION_HOLD_SEC). */
  holdSec: number;
  /** METER_BALANCE_MAX_AGE_SEC. */
  maxAgeSec: number;
  douyin?: PurchaseListReader;
  /** A request's admission budget, ms (keys not reached in time: unknown). Default ADMISSION_BUDGET_MS. */
  budgetMs?: number;
}

export interface Refusal {
  reason: 'insufficient' | 'unknown_balance';
  message: string;
}

export class Admission {
  constructor(
    private readonly db: Ledger,
    private readonly o: AdmissionOptions,
  ) {}

  /** The events refused (by eventId), with why; the others may be enqueued. */
  async admit(events: UsageEvent[]): Promise<Map<string, Refusal>> {
    const byKey = new Map<string, { key: BalanceKey; events: UsageEvent[] }>();
    for (const e of events) {
      const key = {
        openId: e.openId,
        serviceId: e.serviceId,
        serviceModeId: e.serviceModeId,
        isTestEnv: e.isTestEnv,
      };
      const k = JSON.stringify(key);
      const group = byKey.get(k) ?? { key, events: [] };
      group.events.push(e);
      byKey.set(k, group);
    }
    const refused = new Map<string, Refusal>();
    // A few keys at a time (each may read Douyin), within the request's budget: a
    // key not reached in time follows the unknown-balance policy, so the request is
    // answered inside the server's timeout and never enqueued after it.
    const deadline = Date.now() + (this.o.budgetMs ?? ADMISSION_BUDGET_MS);
    const groups = [...byKey.values()].filter((g) => !g.key.isTestEnv);
    let next = 0;
    const lane = async () => {
      while (next < groups.length) {
        const { key, events: group } = groups[next++]!;
        const outcome =
          Date.now() < deadline
            ? await this.admitKey(key, group)
            : this.unknown(group, 'the request ran out of time for admission');
        for (const [id, r] of outcome) refused.set(id, r);
      }
    };
    await Promise.all(Array.from({ length: Math.min(KEYS_AT_ONCE, groups.length) }, lane));
    return refused;
  }

  /** The unknown-balance policy for these events. */
  private unknown(events: UsageEvent[], why: string): Map<string, Refusal> {
    return new Map(
      this.o.unknown === 'reject' ? events.map((e) => [e.eventId, unknownBalance(why)] as const) : [],
    );
  }

  private async admitKey(key: BalanceKey, events: UsageEvent[]): Promise<Map<string, Refusal>> {
    const refused = new Map<string, Refusal>();
    try {
      // Douyin is asked (when the snapshot is stale) before the key's lock is taken:
      // the locked transaction only reads the ledger and writes the holds.
      const fresh = await balanceOf(this.db, key, { maxAgeSec: this.o.maxAgeSec, douyin: this.o.douyin });
      await this.db.$transaction(async (tx) => {
        await lockKeyAdmission(tx, key);
        const balance = await balanceOf(tx, key, { maxAgeSec: this.o.maxAgeSec, cached: true });
        if (balance.available === null) {
          if (this.o.unknown === 'reject')
            for (const e of events) refused.set(e.eventId, unknownBalance(fresh.refreshError));
          return;
        }
        const held = await heldUses(
          tx,
          key,
          events.map((e) => e.eventId),
        );
        let left = balance.available - held.uses;
        const admitted: UsageEvent[] = [];
        for (const e of events) {
          // Admitted before (a retry, or the same event again): its uses are held already.
          if (held.alreadyHeld.has(e.eventId)) continue;
          if (e.count <= left) {
            left -= e.count;
            admitted.push(e);
          } else
            refused.set(e.eventId, {
              reason: 'insufficient',
              message: `insufficient remaining uses: ${Math.max(0, left)} available, ${e.count} asked`,
            });
        }
        await addHolds(tx, key, admitted, this.o.holdSec);
      });
    } catch (err) {
      // The ledger cannot decide now: the balance is unknown.
      return this.unknown(events, (err as Error).message);
    }
    return refused;
  }
}

function unknownBalance(why?: string): Refusal {
  return {
    reason: 'unknown_balance',
    message: `the user's remaining uses are unknown${why ? ` (${why.split('\n')[0]})` : ''}; refused (METER_ADMISSION_UNKNOWN=reject)`,
  };
}
