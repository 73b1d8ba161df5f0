// The simulated market's in-memory state: one bucket of remaining times per
// (user, service, mode), the imported purchases, and the accepted deductions
// (trades) keyed by out_trade_no, remembered for the idempotency window only.
// Every business operation is O(1). Each purchase gets an order id, and each bucket
// remembers the order of its latest purchase, for the order webhooks.
import { CODES } from './envelope.js';
import type { BalanceInput, SimulatorBalance, SimulatorTrade } from './types.js';
import type { DecrParams, DeletePurchaseParams, InsertPurchaseParams } from './validate.js';
import { newOrderId } from './webhook-wire.js';

const DAY_MS = 86_400_000;
/** Validity given to a bucket when a purchase has no duration (the unit of `duration` is taken as days). */
const DEFAULT_VALIDITY_MS = 365 * DAY_MS;

interface Bucket extends SimulatorBalance {
  effectiveTime: number;
  expireTime: number;
  /** The order of the latest purchase into it (a fresh id for a bucket set directly). */
  orderId: string;
}

interface StoredPurchase {
  params: InsertPurchaseParams;
  orderId: string;
}

/** A bucket as an order webhook's snapshot describes it. */
export interface BucketSnapshot {
  remaining: number;
  effectiveTime: number;
  /** Epoch ms, or -1 for permanent. */
  expireTime: number;
  orderId: string;
}

/** The answer code of an insert or delete; `orderId` is set only when it changed something. */
export interface PurchaseOutcome {
  code: number;
  orderId?: string;
}

export interface DecrOutcome {
  code: number;
  /** True when this call deducted (a first, successful try). */
  applied: boolean;
  /** True when answered success because the out_trade_no had already been applied. */
  replay: boolean;
  /** True when it deducted although the out_trade_no had been applied, longer ago than the window. */
  again: boolean;
  /** The bucket's remaining times after a deduction that applied. */
  remaining?: number;
}

export interface PurchaseListEntry {
  service_id: string;
  service_name: string;
  service_status: number;
  specification_type: number;
  specification_title: string;
  service_mode_id: string;
  remain_service_times: number;
  effective_time: number;
  expire_time: number;
}

const SEP = '\u0000';

export class MarketStore {
  private buckets = new Map<string, Bucket>();
  /** open_id + service_id -> its buckets by mode, for the purchase list. */
  private byUserService = new Map<string, Map<string, Bucket>>();
  private trades = new Map<string, SimulatorTrade>();
  private purchases = new Map<string, StoredPurchase>();

  /** `windowMs()`: how long an applied out_trade_no is remembered (read per call: it can change). */
  constructor(private readonly windowMs: () => number) {}

  decr(p: DecrParams, now = Date.now()): DecrOutcome {
    const known = this.trades.get(p.out_trade_no);
    // Past the window the platform has forgotten it: the call is a new deduction.
    const prior = known && now - known.at < this.windowMs() ? known : undefined;
    if (prior) {
      const same =
        prior.count === p.count &&
        prior.isTestEnv === p.is_test_env &&
        prior.openId === p.open_id &&
        prior.serviceId === p.service_id &&
        prior.serviceModeId === p.service_mode_id;
      return same
        ? { code: CODES.SUCCESS, applied: false, replay: true, again: false }
        : { code: CODES.OUT_TRADE_NO_CONFLICT, applied: false, replay: false, again: false };
    }
    const bucket = this.buckets.get(key(p.open_id, p.service_id, p.service_mode_id));
    if (!bucket || bucket.remaining < p.count) {
      return { code: CODES.INSUFFICIENT_TIMES, applied: false, replay: false, again: false };
    }
    bucket.remaining -= p.count;
    bucket.deducted += p.count;
    this.trades.set(p.out_trade_no, {
      outTradeNo: p.out_trade_no,
      openId: p.open_id,
      serviceId: p.service_id,
      serviceModeId: p.service_mode_id,
      isTestEnv: p.is_test_env,
      count: p.count,
      at: now,
    });
    return {
      code: CODES.SUCCESS,
      applied: true,
      replay: false,
      again: known !== undefined,
      remaining: bucket.remaining,
    };
  }

  /** An identical replay is a success that changes nothing (no orderId). */
  insertPurchase(p: InsertPurchaseParams): PurchaseOutcome {
    const k = key(p.service_id, p.service_mode_id, p.out_trade_no);
    const prior = this.purchases.get(k);
    if (prior) return { code: samePurchase(prior.params, p) ? CODES.SUCCESS : CODES.OUT_TRADE_NO_CONFLICT };
    const orderId = newOrderId();
    this.purchases.set(k, { params: p, orderId });
    const validity = p.duration !== undefined ? p.duration * DAY_MS : DEFAULT_VALIDITY_MS;
    const bucket = this.bucket(p.open_id, p.service_id, p.service_mode_id, p.purchase_time, validity);
    const usage = p.usage_times ?? 0;
    bucket.purchased += usage;
    bucket.remaining += usage;
    bucket.effectiveTime = Math.min(bucket.effectiveTime, p.purchase_time);
    bucket.expireTime = Math.max(bucket.expireTime, p.purchase_time + validity);
    bucket.orderId = orderId;
    return { code: CODES.SUCCESS, orderId };
  }

  /** `orderId`: the deleted purchase's order. */
  deletePurchase(p: DeletePurchaseParams): PurchaseOutcome {
    const k = key(p.service_id, p.service_mode_id, p.out_trade_no);
    const prior = this.purchases.get(k);
    if (!prior || prior.params.open_id !== p.open_id) return { code: CODES.PURCHASE_NOT_FOUND };
    this.purchases.delete(k);
    const bucket = this.buckets.get(key(p.open_id, p.service_id, p.service_mode_id));
    const usage = prior.params.usage_times ?? 0;
    if (bucket) {
      bucket.remaining = Math.max(0, bucket.remaining - usage);
      bucket.purchased = Math.max(0, bucket.purchased - usage);
    }
    return { code: CODES.SUCCESS, orderId: prior.orderId };
  }

  snapshot(openId: string, serviceId: string, serviceModeId: string): BucketSnapshot | undefined {
    const b = this.buckets.get(key(openId, serviceId, serviceModeId));
    return (
      b && {
        remaining: b.remaining,
        effectiveTime: b.effectiveTime,
        expireTime: b.expireTime,
        orderId: b.orderId,
      }
    );
  }

  /** `testMode`: remain_service_times is always 1, as on the platform. */
  purchaseList(openId: string, serviceId: string, testMode = false): PurchaseListEntry[] {
    const modes = this.byUserService.get(openId + SEP + serviceId);
    if (!modes) return [];
    return [...modes.values()].map((b) => ({
      service_id: b.serviceId,
      service_name: 'Simulated service',
      service_status: 1,
      specification_type: 1,
      specification_title: b.serviceModeId,
      service_mode_id: b.serviceModeId,
      remain_service_times: testMode ? 1 : b.remaining,
      effective_time: b.effectiveTime,
      expire_time: b.expireTime,
    }));
  }

  /** Sets remaining times directly; purchased and deducted are kept (0 for a new bucket). */
  setBalance(b: BalanceInput): void {
    this.bucket(b.openId, b.serviceId, b.serviceModeId, Date.now(), DEFAULT_VALIDITY_MS).remaining =
      b.remaining;
  }

  balances(): SimulatorBalance[] {
    return [...this.buckets.values()].map((b) => ({
      openId: b.openId,
      serviceId: b.serviceId,
      serviceModeId: b.serviceModeId,
      remaining: b.remaining,
      purchased: b.purchased,
      deducted: b.deducted,
    }));
  }

  tradeList(): SimulatorTrade[] {
    return [...this.trades.values()].map((t) => ({ ...t }));
  }

  clear(): void {
    this.buckets.clear();
    this.byUserService.clear();
    this.trades.clear();
    this.purchases.clear();
  }

  /** The bucket, created valid from `since` for `validityMs` when new. */
  private bucket(
    openId: string,
    serviceId: string,
    serviceModeId: string,
    since: number,
    validityMs: number,
  ): Bucket {
    const k = key(openId, serviceId, serviceModeId);
    let b = this.buckets.get(k);
    if (!b) {
      b = {
        openId,
        serviceId,
        serviceModeId,
        remaining: 0,
        purchased: 0,
        deducted: 0,
        effectiveTime: since,
        expireTime: since + validityMs,
        orderId: newOrderId(),
      };
      this.buckets.set(k, b);
      const us = openId + SEP + serviceId;
      let modes = this.byUserService.get(us);
      if (!modes) {
        modes = new Map();
        this.byUserService.set(us, modes);
      }
      modes.set(serviceModeId, b);
    }
    return b;
  }
}

function key(a: string, b: string, c: string): string {
  return a + SEP + b + SEP + c;
}

function samePurchase(a: InsertPurchaseParams, b: InsertPurchaseParams): boolean {
  return (
    a.open_id === b.open_id &&
    a.period_type === b.period_type &&
    a.purchase_time === b.purchase_time &&
    a.duration === b.duration &&
    a.usage_times === b.usage_times
  );
}
