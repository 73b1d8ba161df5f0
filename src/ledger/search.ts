// The operators' search (GET /api/search): one value looked up exactly as every
// identifier it could be: a batch's id or out_trade_no, an event's eventId, the
// logid Douyin gave an attempt, a user's open_id. Each statement is an index probe
// (charge_batch_pkey, charge_batch_out_trade_no_key, usage_event_event_id_idx (each partition's),
// call_attempt_logid_idx, meter_key_identity_key), so a search costs the same
// however large the ledger; nothing is matched by prefix or pattern.
import { Prisma } from '../generated/prisma/client.js';
import type { Sql } from './db.js';
import type { EventStatus } from './events.js';

/** Results of one search, at most. */
export const SEARCH_LIMIT = 20;

/** The batching key a result belongs to. */
export interface SearchKey {
  openId: string;
  serviceId: string;
  serviceModeId: string;
  isTestEnv: boolean;
}

export interface BatchHit extends SearchKey {
  kind: 'batch';
  /** Which of the batch's identifiers the value is. */
  match: 'id' | 'outTradeNo';
  id: string;
  outTradeNo: string;
  status: string;
  count: number;
  /** A derived batch's (partial policy) parent. */
  parentId: string | null;
  createdAt: string;
}

export interface EventHit extends SearchKey {
  kind: 'event';
  eventId: string;
  seq: string;
  count: number;
  status: EventStatus;
  /** The batch whose range holds the event; null while it is pending. */
  batchId: string | null;
  receivedAt: string;
}

export interface AttemptHit extends SearchKey {
  kind: 'attempt';
  id: string;
  logid: string;
  batchId: string;
  batchStatus: string;
  attemptNo: number;
  outTradeNo: string;
  outcome: string;
  errorKind: string | null;
  startedAt: string;
}

export interface UserHit {
  kind: 'user';
  openId: string;
  /** The user's batching keys, at most SEARCH_LIMIT (moreKeys says there are others). */
  keys: (SearchKey & { keyId: number })[];
  moreKeys: boolean;
}

export type SearchResult = BatchHit | EventHit | AttemptHit | UserHit;

export interface SearchAnswer {
  q: string;
  results: SearchResult[];
  /** More matched than SEARCH_LIMIT; the rest are left out. */
  truncated: boolean;
}

const KEY_COLUMNS = Prisma.raw(`k.open_id AS "openId", k.service_id AS "serviceId",
  k.service_mode_id AS "serviceModeId", k.is_test_env AS "isTestEnv"`);

type Dated<T, F extends keyof T> = Omit<T, F> & { [K in F]: Date };

/** Largest BIGINT: a longer run of digits is no batch id (and must not reach a ::bigint). */
const MAX_BIGINT = (1n << 63n) - 1n;

/** The value as a batch id, if it can be one. */
export function asBatchId(q: string): bigint | undefined {
  if (!/^[1-9][0-9]{0,18}$/.test(q)) return undefined;
  const id = BigInt(q);
  return id <= MAX_BIGINT ? id : undefined;
}

/** The batch matching `where` (by id or by out_trade_no: both unique). */
async function batchHits(db: Sql, match: BatchHit['match'], where: Prisma.Sql): Promise<BatchHit[]> {
  const rows = await db.$queryRaw<Dated<BatchHit, 'createdAt'>[]>`
    SELECT 'batch' AS kind, ${match}::text AS match, b.id::text AS id, b.out_trade_no AS "outTradeNo",
           b.status::text AS status, b.count, b.parent_id::text AS "parentId", b.created_at AS "createdAt",
           ${KEY_COLUMNS}
    FROM charge_batch b JOIN meter_key k ON k.id = b.key_id
    WHERE ${where}`;
  return rows.map((r) => ({ ...r, createdAt: r.createdAt.toISOString() }));
}

/** The batch with this id. */
export const batchById = (db: Sql, id: bigint) => batchHits(db, 'id', Prisma.sql`b.id = ${id}`);

/** The batch with this out_trade_no. */
export const batchByOutTradeNo = (db: Sql, outTradeNo: string) =>
  batchHits(db, 'outTradeNo', Prisma.sql`b.out_trade_no = ${outTradeNo}`);

/** The event with this eventId, its status derived as everywhere (the view usage_event_status). */
export async function eventByEventId(db: Sql, eventId: string): Promise<EventHit[]> {
  const rows = await db.$queryRaw<Dated<EventHit, 'receivedAt'>[]>`
    SELECT 'event' AS kind, e.event_id AS "eventId", e.seq::text AS seq, e.count, e.status,
           e.batch_id::text AS "batchId", e.received_at AS "receivedAt", ${KEY_COLUMNS}
    FROM usage_event_status e JOIN meter_key k ON k.id = e.key_id
    WHERE e.event_id = ${eventId}`;
  return rows.map((r) => ({ ...r, receivedAt: r.receivedAt.toISOString() }));
}

/** The attempts Douyin answered with this logid (one, as a rule), newest first. */
export async function attemptsByLogid(db: Sql, logid: string, limit: number): Promise<AttemptHit[]> {
  const rows = await db.$queryRaw<Dated<AttemptHit, 'startedAt'>[]>`
    SELECT 'attempt' AS kind, a.id::text AS id, a.logid, a.batch_id::text AS "batchId",
           b.status::text AS "batchStatus", a.attempt_no AS "attemptNo", a.out_trade_no AS "outTradeNo",
           a.outcome, a.error_kind AS "errorKind", a.started_at AS "startedAt", ${KEY_COLUMNS}
    FROM call_attempt a JOIN charge_batch b ON b.id = a.batch_id JOIN meter_key k ON k.id = b.key_id
    WHERE a.logid = ${logid}
    ORDER BY a.id DESC LIMIT ${limit}`;
  return rows.map((r) => ({ ...r, startedAt: r.startedAt.toISOString() }));
}

/** The user with this open_id, if the ledger has any key of theirs: the keys, in the index's order. */
export async function userByOpenId(db: Sql, openId: string, limit: number): Promise<UserHit[]> {
  const keys = await db.$queryRaw<UserHit['keys']>`
    SELECT k.id AS "keyId", ${KEY_COLUMNS}
    FROM meter_key k
    WHERE k.open_id = ${openId}
    ORDER BY k.service_id, k.service_mode_id, k.is_test_env LIMIT ${limit + 1}`;
  if (keys.length === 0) return [];
  return [{ kind: 'user', openId, keys: keys.slice(0, limit), moreKeys: keys.length > limit }];
}

/**
 * Everything the value names, batches first, then the event, the attempts, the
 * user; at most `limit` results. The lookups run side by side.
 */
export async function search(db: Sql, q: string, limit = SEARCH_LIMIT): Promise<SearchAnswer> {
  const id = asBatchId(q);
  const found = await Promise.all([
    id === undefined ? [] : batchById(db, id),
    batchByOutTradeNo(db, q),
    eventByEventId(db, q),
    attemptsByLogid(db, q, limit + 1),
    userByOpenId(db, q, limit),
  ]);
  const all: SearchResult[] = [];
  const batches = new Set<string>();
  for (const r of found.flat()) {
    // A batch whose id is its own out_trade_no too is listed once.
    if (r.kind === 'batch') {
      if (batches.has(r.id)) continue;
      batches.add(r.id);
    }
    all.push(r);
  }
  return { q, results: all.slice(0, limit), truncated: all.length > limit };
}
