-- Notifications to app services (docs/notifications.md): operators' webhook
-- endpoints, the transactional outbox (notification), one delivery per endpoint
-- and notification, and balance.low's per-endpoint state.
--
-- The outbox rows are written by triggers on the state changes themselves (a
-- batch's status, an order recorded, a drift found), so every path that makes the
-- change (the charger's one-statement settlement, its transaction path, an
-- operator's resolve, a replay, a webhook message) writes the notification in its
-- own transaction: a crash cannot lose one, a rollback cannot send one, and a new
-- path cannot forget one. A trigger writes nothing while no enabled endpoint wants
-- the type, so an unused notification costs one lookup in a tiny table.

CREATE TABLE "webhook_endpoint" (
    "id" BIGSERIAL NOT NULL,
    "url" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "event_types" TEXT[] NOT NULL,
    "secret" TEXT NOT NULL,
    -- Rotation with overlap: deliveries are signed with both until this time.
    "previous_secret" TEXT,
    "previous_secret_until" TIMESTAMPTZ(3),
    "low_balance_threshold" INTEGER NOT NULL DEFAULT 10,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "disabled_reason" TEXT,
    "disabled_at" TIMESTAMPTZ(3),
    -- The first failed delivery since the last successful one (null: not failing).
    "failing_since" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "webhook_endpoint_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "notification" (
    "id" TEXT NOT NULL DEFAULT ('evt_' || replace(gen_random_uuid()::text, '-', '')),
    -- Dispatch order.
    "seq" BIGSERIAL NOT NULL,
    "type" TEXT NOT NULL,
    -- Only this endpoint (balance.low: the threshold is the endpoint's); null: every subscriber.
    "endpoint_id" BIGINT,
    "data" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    -- When its deliveries were made (null: not yet).
    "dispatched_at" TIMESTAMPTZ(3),

    CONSTRAINT "notification_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "notification_endpoint_id_fkey" FOREIGN KEY ("endpoint_id") REFERENCES "webhook_endpoint"("id") ON DELETE CASCADE
);
CREATE UNIQUE INDEX "notification_seq_key" ON "notification"("seq");
CREATE INDEX "notification_undispatched_idx" ON "notification"("seq") WHERE "dispatched_at" IS NULL;
CREATE INDEX "notification_created_at_idx" ON "notification"("created_at");

CREATE TABLE "notification_delivery" (
    "id" BIGSERIAL NOT NULL,
    "notification_id" TEXT NOT NULL,
    "endpoint_id" BIGINT NOT NULL,
    -- pending: to be sent (again); delivered: a 2xx answer; failed: given up (after
    -- NOTIFY_GIVE_UP_AFTER_SEC); cancelled: its endpoint was disabled.
    "status" TEXT NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_attempt_at" TIMESTAMPTZ(3),
    "last_attempt_at" TIMESTAMPTZ(3),
    "last_status_code" INTEGER,
    "last_error" TEXT,
    "delivered_at" TIMESTAMPTZ(3),
    -- Operators' redeliveries: each gives the delivery a new job (and only that
    -- round's job may attempt it) and a new retry schedule, counted from
    -- retry_from with the attempts before it (attempt_base) not counted.
    "redeliveries" INTEGER NOT NULL DEFAULT 0,
    "retry_from" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attempt_base" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "notification_delivery_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "notification_delivery_status_check" CHECK ("status" IN ('pending', 'delivered', 'failed', 'cancelled')),
    CONSTRAINT "notification_delivery_notification_id_fkey" FOREIGN KEY ("notification_id") REFERENCES "notification"("id") ON DELETE CASCADE,
    CONSTRAINT "notification_delivery_endpoint_id_fkey" FOREIGN KEY ("endpoint_id") REFERENCES "webhook_endpoint"("id") ON DELETE CASCADE
);
CREATE UNIQUE INDEX "notification_delivery_notification_id_endpoint_id_key" ON "notification_delivery"("notification_id", "endpoint_id");
CREATE INDEX "notification_delivery_endpoint_id_id_idx" ON "notification_delivery"("endpoint_id", "id");
CREATE INDEX "notification_delivery_pending_idx" ON "notification_delivery"("next_attempt_at") WHERE "status" = 'pending';

-- balance.low has fired for this endpoint and key, and not re-armed since (a check
-- found the balance back at the threshold, or the endpoint's threshold changed).
CREATE TABLE "balance_low_state" (
    "endpoint_id" BIGINT NOT NULL,
    "key_id" INTEGER NOT NULL,
    -- The threshold it fired under: a state of another threshold counts as none.
    "threshold" INTEGER NOT NULL,
    "available" INTEGER NOT NULL,
    "since" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "balance_low_state_pkey" PRIMARY KEY ("endpoint_id", "key_id"),
    CONSTRAINT "balance_low_state_endpoint_id_fkey" FOREIGN KEY ("endpoint_id") REFERENCES "webhook_endpoint"("id") ON DELETE CASCADE
);
CREATE INDEX "balance_low_state_key_id_idx" ON "balance_low_state"("key_id");

-- Whether an enabled endpoint wants this type.
CREATE FUNCTION "notification_wanted"(t TEXT) RETURNS BOOLEAN LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM webhook_endpoint WHERE enabled AND t = ANY(event_types))
$$;

-- A batch settled (or an operator resolved it charged): batch.charged, batch.partial,
-- batch.insufficient, batch.dead. Its events are the batch's range, a derived
-- batch's its parent's; the ids are capped at 100, with the total.
CREATE FUNCTION "notify_batch_settled"() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
  t TEXT := 'batch.' || NEW.status::text;
  k meter_key%ROWTYPE;
  r charge_batch%ROWTYPE;
  ids JSONB;
  overage JSONB;
BEGIN
  IF NOT notification_wanted(t) THEN RETURN NULL; END IF;
  SELECT * INTO k FROM meter_key WHERE id = NEW.key_id;
  IF NEW.parent_id IS NULL THEN r := NEW; ELSE SELECT * INTO r FROM charge_batch WHERE id = NEW.parent_id; END IF;
  SELECT COALESCE(jsonb_agg(e.event_id ORDER BY e.seq), '[]'::jsonb) INTO ids FROM (
    SELECT event_id, seq FROM usage_event
    WHERE key_id = r.key_id AND seq BETWEEN r.first_seq AND r.last_seq ORDER BY seq LIMIT 100) e;
  IF NEW.status = 'partial' THEN
    SELECT jsonb_build_object('ids', COALESCE(jsonb_agg(x.event_id ORDER BY x.seq) FILTER (WHERE x.n <= 100), '[]'::jsonb),
                              'total', count(*))
    INTO overage FROM (
      SELECT event_id, seq, row_number() OVER (ORDER BY seq) AS n FROM usage_event
      WHERE key_id = NEW.key_id AND seq > COALESCE(NEW.charged_through_seq, NEW.first_seq - 1)
        AND seq BETWEEN NEW.first_seq AND NEW.last_seq) x;
  END IF;
  INSERT INTO notification (type, data) VALUES (t, jsonb_strip_nulls(jsonb_build_object(
    'openId', k.open_id, 'serviceId', k.service_id, 'serviceModeId', k.service_mode_id, 'isTestEnv', k.is_test_env,
    'batchId', NEW.id::text, 'outTradeNo', NEW.out_trade_no, 'status', NEW.status::text,
    'parentBatchId', NEW.parent_id::text,
    'count', NEW.count, 'chargedCount', NEW.charged_count, 'overageCount', NEW.overage_count,
    'reason', CASE WHEN NEW.status = 'charged' THEN NULL ELSE COALESCE(NEW.dead_reason, NEW.last_error) END,
    'errorCode', CASE WHEN NEW.status = 'charged' THEN NULL ELSE NEW.last_error_code END,
    'resolvedBy', CASE WHEN NEW.resolved_as IS NULL THEN NULL ELSE 'operator' END,
    'attempts', NEW.attempts,
    'eventIds', ids, 'eventIdsTotal', r.event_count,
    'overageEventIds', overage->'ids', 'overageEventIdsTotal', (overage->>'total')::int)));
  RETURN NULL;
END $$;
CREATE TRIGGER "charge_batch_notify" AFTER UPDATE OF "status" ON "charge_batch" FOR EACH ROW
  -- A derived batch's refusal or death is not the user's: under the partial policy a
  -- refused derived batch lets its parent go on (to partial), and a dead one takes its
  -- parent with it, which reports batch.dead itself.
  WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('charged', 'partial', 'insufficient', 'dead')
        AND (NEW.parent_id IS NULL OR NEW.status NOT IN ('insufficient', 'dead')))
  EXECUTE FUNCTION "notify_batch_settled"();

-- An order event recorded from Douyin's webhook: purchase.updated. (It does not
-- re-arm balance.low: the order makes the key's next balance check read Douyin
-- again, and that check re-arms it if the balance is back at the threshold.)
CREATE FUNCTION "notify_order_recorded"() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
  IF notification_wanted('purchase.updated') THEN
    INSERT INTO notification (type, data) VALUES ('purchase.updated', jsonb_build_object(
      'openId', NEW.open_id, 'serviceId', NEW.service_id, 'serviceModeId', NEW.service_mode_id,
      'orderId', NEW.order_id, 'orderEvent', NEW.order_event, 'remainServiceTimes', NEW.remain_service_times,
      'effectiveTime', NEW.effective_time, 'expireTime', NEW.expire_time, 'logId', NEW.log_id,
      'receivedAt', NEW.received_at));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER "douyin_order_notify" AFTER INSERT ON "douyin_order" FOR EACH ROW
  EXECUTE FUNCTION "notify_order_recorded"();

-- A reconciliation finding with a drift: reconcile.drift.
CREATE FUNCTION "notify_drift_found"() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
  IF notification_wanted('reconcile.drift') THEN
    INSERT INTO notification (type, data) VALUES ('reconcile.drift', jsonb_build_object(
      'openId', NEW.open_id, 'serviceId', NEW.service_id, 'serviceModeId', NEW.service_mode_id,
      'isTestEnv', NEW.is_test_env, 'checkedAt', NEW.checked_at, 'expected', NEW.expected, 'actual', NEW.actual,
      'drift', NEW.drift, 'cumulativeDrift', NEW.cumulative_drift, 'charged', NEW.charged,
      'uncertain', NEW.uncertain, 'evidence', NEW.evidence));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER "balance_drift_notify" AFTER INSERT ON "balance_drift" FOR EACH ROW
  WHEN (NEW.drift <> 0) EXECUTE FUNCTION "notify_drift_found"();
