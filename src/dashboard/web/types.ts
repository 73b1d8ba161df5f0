// Shapes of the operator API's answers (type-only imports: nothing of the server is bundled).

import type { TokenStatus } from '../../douyin/token.js';
import type { CallStats, RecentCallError } from '../../ledger/attempts.js';
import type { MinutePoint } from '../../ledger/reports.js';
import type { SearchAnswer, SearchResult } from '../../ledger/search.js';
import type { ServiceUsagePoint, ServiceUsageSeries } from '../../ledger/service-usage.js';
import type { DeliveryView, EndpointView } from '../../ledger/webhook-endpoints.js';
import type { MeterStatus } from '../../metering/status.js';
import type { ServiceUsageResponse } from '../../server/api-service-usage.js';
import type { DouyinFailure } from '../../server/douyin-api.js';
import type { attemptView, BatchView, eventView, KeyView } from '../../server/views.js';

export type {
  BatchView,
  DeliveryView,
  EndpointView,
  KeyView,
  MinutePoint,
  RecentCallError,
  SearchAnswer,
  SearchResult,
  ServiceUsagePoint,
  ServiceUsageResponse,
  ServiceUsageSeries,
};

export type StatusResponse = MeterStatus & { now: string };

export interface BatchPage {
  items: BatchView[];
  nextCursor: string | null;
}

/** One call attempt, as src/server/views.ts writes it. */
export type AttemptView = ReturnType<typeof attemptView>;

/** One event, as src/server/views.ts writes it. */
export type EventView = ReturnType<typeof eventView>;

export interface BatchDetail {
  batch: BatchView & { derived: { id: string; status: string; count: number; outTradeNo: string }[] };
  events: { total: number; shown: number; items: EventView[] };
  attempts: AttemptView[];
}

export interface TimeseriesResponse {
  minutes: number;
  points: MinutePoint[];
}

export interface DouyinHealth extends CallStats {
  windowSec: number;
  errorRate: number | null;
  lastErrors: RecentCallError[];
  token: TokenStatus | null;
}

export interface Purchase {
  serviceModeId?: string;
  specificationTitle?: string;
  serviceName?: string;
  remainServiceTimes?: number;
  serviceStatus?: number;
  expireTime?: number;
  [k: string]: unknown;
}

export interface UserResponse {
  openId: string;
  keys: KeyView[];
  events: Record<string, { events: number; uses: number }>;
  recentBatches: BatchView[];
  charged: (KeyView & { batches: number; uses: number })[];
  remaining: ({ serviceId: string; purchases: Purchase[] } | { serviceId: string; error: DouyinFailure })[];
  /** More services' remaining times follow with ?cursor=this. */
  nextCursor: string | null;
}

export interface UserEventView extends EventView {
  key: KeyView;
  batchId: string | null;
}

export interface UserEventsPage {
  items: UserEventView[];
  nextCursor: string | null;
}

export type { ReplayResult } from '../../metering/replay.js';
export type { ResolveResult } from '../../metering/resolve.js';

/** GET /api/webhook-endpoints. */
export interface WebhookEndpointList {
  items: EndpointView[];
  /** Every notification type an endpoint may want. */
  eventTypes: string[];
  /** What a new endpoint wants unless told otherwise (batch.charged is opt-in). */
  defaultEventTypes: string[];
}

/** POST /api/webhook-endpoints and POST …/rotate-secret: the secret is in no other answer. */
export interface EndpointWithSecret {
  endpoint: EndpointView;
  secret: string;
}

export interface DeliveryPage {
  items: DeliveryView[];
  nextCursor: string | null;
}
