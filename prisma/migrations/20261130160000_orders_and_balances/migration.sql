-- Douyin's order webhook and what the meter knows of each user's balance.
-- A webhook message is stored raw (as signed) before it is answered, and
-- processed after; Msg-Id deduplicates the platform's redeliveries. Balance
-- snapshots are appended, never updated: their history is reconciliation's
-- evidence.

CREATE TABLE "douyin_webhook_message" (
    "id" BIGSERIAL NOT NULL,
    "msg_id" TEXT NOT NULL,
    "event" TEXT NOT NULL,
    "body" TEXT NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "processed_at" TIMESTAMPTZ(3),
    "error" TEXT,

    CONSTRAINT "douyin_webhook_message_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "douyin_webhook_message_msg_id_key" ON "douyin_webhook_message"("msg_id");
-- The processor's queue: messages not processed yet.
CREATE INDEX "douyin_webhook_message_unprocessed_idx" ON "douyin_webhook_message"("id") WHERE "processed_at" IS NULL;

CREATE TABLE "douyin_order" (
    "id" BIGSERIAL NOT NULL,
    "message_id" BIGINT NOT NULL,
    "order_id" TEXT NOT NULL,
    "open_id" TEXT NOT NULL,
    "order_event" INTEGER NOT NULL,
    "service_id" TEXT,
    "service_mode_id" TEXT,
    "remain_service_times" INTEGER,
    "effective_time" BIGINT,
    "expire_time" BIGINT,
    "log_id" TEXT,
    "received_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "douyin_order_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "douyin_order_message_id_fkey" FOREIGN KEY ("message_id") REFERENCES "douyin_webhook_message"("id") ON DELETE RESTRICT ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "douyin_order_message_id_key" ON "douyin_order"("message_id");
CREATE INDEX "douyin_order_open_id_received_at_idx" ON "douyin_order"("open_id", "received_at");
CREATE INDEX "douyin_order_order_id_idx" ON "douyin_order"("order_id");

CREATE TABLE "balance_snapshot" (
    "id" BIGSERIAL NOT NULL,
    "open_id" TEXT NOT NULL,
    "service_id" TEXT NOT NULL,
    "service_mode_id" TEXT NOT NULL,
    "is_test_env" BOOLEAN NOT NULL,
    "remaining" INTEGER NOT NULL,
    "as_of" TIMESTAMPTZ(3) NOT NULL,
    "source" TEXT NOT NULL,

    CONSTRAINT "balance_snapshot_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "balance_snapshot_source_check" CHECK ("source" IN ('webhook', 'purchase_list'))
);
CREATE INDEX "balance_snapshot_key_as_of_idx" ON "balance_snapshot"("open_id", "service_id", "service_mode_id", "is_test_env", "as_of");
