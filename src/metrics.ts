// Prometheus metrics (prom-client), one registry per process. The server and the
// worker both expose it on /metrics. Names are listed in docs/http-api.md ("Metrics").
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'um_process_' });

export const eventsTotal = new Counter({
  name: 'um_events_total',
  help: 'Usage events, by result (accepted, duplicate, rejected at the edge; recorded, duplicate, ledger_rejected in the ledger) and source (sdk, http, import)',
  labelNames: ['result', 'source'] as const,
  registers: [registry],
});

export const batchesTotal = new Counter({
  name: 'um_batches_total',
  help: 'Batches finished, by outcome (charged, partial, insufficient, dead)',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

export const douyinCallDuration = new Histogram({
  name: 'um_douyin_call_duration_seconds',
  help: 'Duration of Douyin API calls, by method, outcome (success, error) and error kind',
  labelNames: ['method', 'outcome', 'kind'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export const rateLimitWait = new Histogram({
  name: 'um_rate_limit_wait_seconds',
  help: 'Time a Douyin call waited for the deployment-wide rate limiter',
  buckets: [0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const rateLimitedTotal = new Counter({
  name: 'um_rate_limited_total',
  help: 'Douyin answers "too frequent" (2118110) that slowed the deployment down',
  registers: [registry],
});

export const queueDepth = new Gauge({
  name: 'um_queue_depth',
  help: 'Jobs in the BullMQ queues, by queue and state (set on scrape)',
  labelNames: ['queue', 'state'] as const,
  registers: [registry],
});

export const oldestPendingEventAge = new Gauge({
  name: 'um_oldest_pending_event_age_seconds',
  help: 'Age of the oldest event not yet in a batch (set on scrape)',
  registers: [registry],
});

export const straySuccessTotal = new Counter({
  name: 'um_stray_success_total',
  help: 'Success answers for a batch the run could no longer settle (lease lost, batch no longer open); each is recorded with a charge_alert row',
  registers: [registry],
});

export const webhookMessagesTotal = new Counter({
  name: 'um_douyin_webhook_messages_total',
  help: 'Douyin webhook requests, by result (stored, duplicate, challenge; refused: signature_missing, signature_invalid, not_configured, malformed)',
  labelNames: ['result'] as const,
  registers: [registry],
});

export const balanceDriftKeys = new Gauge({
  name: 'um_balance_drift_keys',
  help: "Keys whose drift since their first reconciliation is not 0 (Douyin's remaining times against the ledger's expectation); every worker sets it from the database",
  registers: [registry],
});

export const notificationDeliveriesTotal = new Counter({
  name: 'um_notification_deliveries_total',
  help: "Webhook delivery attempts to app services' endpoints, by outcome (delivered, retry, give_up) and type",
  labelNames: ['outcome', 'type'] as const,
  registers: [registry],
});

export const notificationDeliveryDuration = new Histogram({
  name: 'um_notification_delivery_duration_seconds',
  help: 'Time of one webhook delivery attempt, from request to answer (or failure)',
  buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export const chargingPaused = new Gauge({
  name: 'um_charging_paused',
  help: 'Charging is paused deployment-wide (1) or not (0): set by the server on /metrics and by workers as they check it',
  registers: [registry],
});
