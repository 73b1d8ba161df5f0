import { randomBytes } from 'node:crypto';

/**
 * A new out_trade_no: 'um' + time (base36) + 64 random bits, 27-30 characters of
 * [a-z0-9-], within Douyin's documented limit (64, [A-Za-z0-9_.-]) with room for
 * the '-pN' suffix of derived (partial) batches.
 */
export function newOutTradeNo(): string {
  return `um${Date.now().toString(36)}-${randomBytes(8).toString('hex')}`;
}
