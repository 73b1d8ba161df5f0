// JSON shapes of the operator API, mapped from ledger rows (ids as strings:
// they are BIGINT and JSON numbers would lose precision past 2^53).
import type { CallAttempt, ChargeBatch, MeterKey } from '../generated/prisma/client.js';
import type { EventWithStatus } from '../ledger/events.js';

export interface KeyView {
  keyId: number;
  openId: string;
  serviceId: string;
  serviceModeId: string;
  isTestEnv: boolean;
}

export function keyView(k: MeterKey): KeyView {
  return {
    keyId: k.id,
    openId: k.openId,
    serviceId: k.serviceId,
    serviceModeId: k.serviceModeId,
    isTestEnv: k.isTestEnv,
  };
}

export interface BatchView extends KeyView {
  id: string;
  status: string;
  count: number;
  eventCount: number;
  outTradeNo: string;
  attempts: number;
  chargedCount: number;
  overageCount: number;
  parentId: string | null;
  lastErrorKind: string | null;
  lastErrorCode: number | null;
  lastError: string | null;
  deadReason: string | null;
  /** Set when an operator resolved the batch by hand: 'charged' or 'uncharged', and who. */
  resolvedAs: string | null;
  resolvedBy: string | null;
  createdAt: string;
  finishedAt: string | null;
  deadlineAt: string;
  latestLogid: string | null;
}

export function batchView(b: ChargeBatch & { key: MeterKey }, latestLogid: string | null): BatchView {
  return {
    id: String(b.id),
    status: b.status,
    ...keyView(b.key),
    count: b.count,
    eventCount: b.eventCount,
    outTradeNo: b.outTradeNo,
    attempts: b.attempts,
    chargedCount: b.chargedCount,
    overageCount: b.overageCount,
    parentId: b.parentId === null ? null : String(b.parentId),
    lastErrorKind: b.lastErrorKind,
    lastErrorCode: b.lastErrorCode,
    lastError: b.lastError,
    deadReason: b.deadReason,
    resolvedAs: b.resolvedAs,
    resolvedBy: b.resolvedBy,
    createdAt: b.createdAt.toISOString(),
    finishedAt: b.finishedAt?.toISOString() ?? null,
    deadlineAt: b.deadlineAt.toISOString(),
    latestLogid,
  };
}

export function eventView(e: EventWithStatus) {
  return {
    seq: String(e.seq),
    eventId: e.eventId,
    count: e.count,
    status: e.status,
    batchId: e.batchId === null ? null : String(e.batchId),
    occurredAt: e.occurredAt?.toISOString() ?? null,
    receivedAt: e.receivedAt.toISOString(),
    attributes: e.attributes,
  };
}

export function attemptView(a: CallAttempt) {
  return {
    id: String(a.id),
    attemptNo: a.attemptNo,
    outTradeNo: a.outTradeNo,
    count: a.count,
    startedAt: a.startedAt.toISOString(),
    durationMs: a.durationMs,
    outcome: a.outcome,
    httpStatus: a.httpStatus,
    errorCode: a.errorCode,
    subErrorCode: a.subErrorCode,
    errorKind: a.errorKind,
    description: a.description,
    logid: a.logid,
    workerId: a.workerId,
  };
}
