// The verdicts and ledger figures of bench/scale.ts. Exact: every user was deducted
// on Douyin exactly the uses sent for them, the ledger and Douyin agree batch by
// batch (same out_trade_no, same count), no out_trade_no was applied twice, every
// event is in the ledger once. Within the QPS: no sliding 1-second window in which
// the simulator received more business calls than the QPS, and no "too frequent".
import type pg from 'pg';
import type { SimulatorState } from '../src/simulator/index.js';

export interface ExactVerdict {
  exact: boolean;
  /** What is wrong, a few examples each; empty when exact. */
  problems: string[];
  usersChecked: number;
  chargedBatches: number;
  batchesByStatus: Record<string, number>;
}

/** `expected`: openId -> uses sent (acknowledged) for that user; `events`: events sent. */
export async function checkExact(
  db: pg.Client,
  state: SimulatorState,
  expected: Map<string, number>,
  events: number,
): Promise<ExactVerdict> {
  const problems: string[] = [];
  const deducted = new Map(state.balances.map((b) => [b.openId, b.deducted]));
  const wrongUsers = [...expected].filter(([openId, uses]) => (deducted.get(openId) ?? 0) !== uses);
  if (wrongUsers.length > 0) {
    const eg = wrongUsers
      .slice(0, 3)
      .map(([u, want]) => `${u}: deducted ${deducted.get(u) ?? 0}, sent ${want}`)
      .join('; ');
    problems.push(`${wrongUsers.length} users deducted other than sent (${eg})`);
  }

  // Douyin's trades against the ledger's charged batches, one to one.
  const trades = new Map<string, number>();
  for (const t of state.trades) {
    if (trades.has(t.outTradeNo)) problems.push(`out_trade_no ${t.outTradeNo} applied twice`);
    trades.set(t.outTradeNo, t.count);
  }
  if (state.calls.deductedAgain > 0)
    problems.push(`${state.calls.deductedAgain} calls deducted again past the idempotency window`);
  const charged = await db.query<{ out_trade_no: string; count: number }>(
    `SELECT out_trade_no, count FROM charge_batch WHERE status = 'charged' AND resolved_as IS NULL`,
  );
  const mismatched = charged.rows.filter((b) => trades.get(b.out_trade_no) !== b.count);
  if (mismatched.length > 0)
    problems.push(`${mismatched.length} charged batches not applied on Douyin with their count`);
  if (charged.rows.length !== trades.size)
    problems.push(`${charged.rows.length} charged batches in the ledger, ${trades.size} trades on Douyin`);
  if (state.contractViolations.length > 0)
    problems.push(`${state.contractViolations.length} requests broke the wire contract`);

  const byStatus = await db.query<{ status: string; n: number }>(
    'SELECT status::text, count(*)::int AS n FROM charge_batch GROUP BY status',
  );
  const batchesByStatus = Object.fromEntries(byStatus.rows.map((r) => [r.status, r.n]));
  for (const s of ['open', 'insufficient', 'dead', 'partial', 'voided'])
    if (batchesByStatus[s]) problems.push(`${batchesByStatus[s]} batches ${s}`);

  // Every event once: the partitioned ledger has no unique index on eventId to say so.
  const ev = await db.query<{ n: number; ids: number }>(
    'SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS ids FROM usage_event',
  );
  if (ev.rows[0]!.n !== events || ev.rows[0]!.ids !== events)
    problems.push(`${ev.rows[0]!.n} ledger events (${ev.rows[0]!.ids} distinct eventIds) for ${events} sent`);

  return {
    exact: problems.length === 0,
    problems,
    usersChecked: expected.size,
    chargedBatches: charged.rows.length,
    batchesByStatus,
  };
}

export interface QpsVerdict {
  withinQps: boolean;
  /** Most business calls the simulator received in any sliding 1000 ms window. */
  maxCallsPerSecond: number;
  /** Calls the simulator answered "too frequent" (2118110). */
  rateLimited: number;
}

export function checkQps(state: SimulatorState, qps: number): QpsVerdict {
  const { maxPerSecond, rateLimited } = state.calls;
  return {
    withinQps: maxPerSecond <= qps && rateLimited === 0,
    maxCallsPerSecond: maxPerSecond,
    rateLimited,
  };
}

/** Enqueue (producer side) to charged (batch settled), over every charged event, ms. */
export async function chargeLatency(db: pg.Client): Promise<{ p50: number; p99: number }> {
  const r = await db.query<{ p50: number; p99: number }>(`
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
    FROM (SELECT extract(epoch FROM b.finished_at - e.enqueued_at) * 1000 AS ms
          FROM charge_batch b JOIN usage_event e
            ON e.key_id = b.key_id AND e.seq BETWEEN b.first_seq AND b.last_seq
          WHERE b.status = 'charged' AND b.parent_id IS NULL) t`);
  return { p50: Math.round(r.rows[0]!.p50), p99: Math.round(r.rows[0]!.p99) };
}
