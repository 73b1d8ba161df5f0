-- CreateEnum
CREATE TYPE "event_status" AS ENUM ('pending', 'batched', 'charged', 'overage', 'insufficient', 'dead');

-- CreateEnum
CREATE TYPE "batch_status" AS ENUM ('open', 'charged', 'partial', 'insufficient', 'dead');

-- CreateTable
CREATE TABLE "meter_key" (
    "id" SERIAL NOT NULL,
    "open_id" TEXT NOT NULL,
    "service_id" TEXT NOT NULL,
    "service_mode_id" TEXT NOT NULL,
    "is_test_env" BOOLEAN NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "meter_key_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "usage_event" (
    "seq" BIGSERIAL NOT NULL,
    "event_id" TEXT NOT NULL,
    "key_id" INTEGER NOT NULL,
    "count" INTEGER NOT NULL,
    "occurred_at" TIMESTAMPTZ(3),
    "enqueued_at" TIMESTAMPTZ(3),
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attributes" JSONB,
    "status" "event_status" NOT NULL DEFAULT 'pending',
    "batch_id" BIGINT,

    CONSTRAINT "usage_event_pkey" PRIMARY KEY ("seq")
);

-- CreateTable
CREATE TABLE "charge_batch" (
    "id" BIGSERIAL NOT NULL,
    "key_id" INTEGER NOT NULL,
    "out_trade_no" VARCHAR(64) NOT NULL,
    "count" INTEGER NOT NULL,
    "event_count" INTEGER NOT NULL,
    "status" "batch_status" NOT NULL DEFAULT 'open',
    "parent_id" BIGINT,
    "charged_count" INTEGER NOT NULL DEFAULT 0,
    "overage_count" INTEGER NOT NULL DEFAULT 0,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_error_kind" TEXT,
    "last_error_code" INTEGER,
    "last_error" TEXT,
    "dead_reason" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deadline_at" TIMESTAMPTZ(3) NOT NULL,
    "finished_at" TIMESTAMPTZ(3),

    CONSTRAINT "charge_batch_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "call_attempt" (
    "id" BIGSERIAL NOT NULL,
    "batch_id" BIGINT NOT NULL,
    "attempt_no" INTEGER NOT NULL,
    "out_trade_no" VARCHAR(64) NOT NULL,
    "count" INTEGER NOT NULL,
    "started_at" TIMESTAMPTZ(3) NOT NULL,
    "duration_ms" INTEGER NOT NULL,
    "http_status" INTEGER,
    "error_code" INTEGER,
    "sub_error_code" INTEGER,
    "description" TEXT,
    "logid" TEXT,
    "outcome" TEXT NOT NULL,
    "error_kind" TEXT,
    "worker_id" TEXT,

    CONSTRAINT "call_attempt_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "operator_audit" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "target" TEXT,
    "details" JSONB,

    CONSTRAINT "operator_audit_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "meter_key_identity_key" ON "meter_key"("open_id", "service_id", "service_mode_id", "is_test_env");

-- CreateIndex
CREATE UNIQUE INDEX "usage_event_event_id_key" ON "usage_event"("event_id");

-- CreateIndex
CREATE INDEX "usage_event_batch_id_idx" ON "usage_event"("batch_id");

-- CreateIndex
CREATE INDEX "usage_event_key_id_seq_idx" ON "usage_event"("key_id", "seq");

-- CreateIndex
CREATE UNIQUE INDEX "charge_batch_out_trade_no_key" ON "charge_batch"("out_trade_no");

-- CreateIndex
CREATE INDEX "charge_batch_status_created_at_idx" ON "charge_batch"("status", "created_at");

-- CreateIndex
CREATE INDEX "charge_batch_key_id_created_at_idx" ON "charge_batch"("key_id", "created_at");

-- CreateIndex
CREATE INDEX "charge_batch_created_at_idx" ON "charge_batch"("created_at");

-- CreateIndex
CREATE INDEX "charge_batch_parent_id_idx" ON "charge_batch"("parent_id");

-- CreateIndex
CREATE INDEX "call_attempt_batch_id_attempt_no_idx" ON "call_attempt"("batch_id", "attempt_no");

-- CreateIndex
CREATE INDEX "call_attempt_started_at_idx" ON "call_attempt"("started_at");

-- CreateIndex
CREATE INDEX "operator_audit_at_idx" ON "operator_audit"("at");

-- AddForeignKey
ALTER TABLE "usage_event" ADD CONSTRAINT "usage_event_key_id_fkey" FOREIGN KEY ("key_id") REFERENCES "meter_key"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "usage_event" ADD CONSTRAINT "usage_event_batch_id_fkey" FOREIGN KEY ("batch_id") REFERENCES "charge_batch"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "charge_batch" ADD CONSTRAINT "charge_batch_key_id_fkey" FOREIGN KEY ("key_id") REFERENCES "meter_key"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "charge_batch" ADD CONSTRAINT "charge_batch_parent_id_fkey" FOREIGN KEY ("parent_id") REFERENCES "charge_batch"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "call_attempt" ADD CONSTRAINT "call_attempt_batch_id_fkey" FOREIGN KEY ("batch_id") REFERENCES "charge_batch"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Hand-written (not expressible in schema.prisma): partial indexes over the
-- pending events only, used by batch formation (per key, in arrival order) and
-- by the sweeper and status queries (oldest pending first).
CREATE INDEX "usage_event_pending_key_seq_idx" ON "usage_event"("key_id", "seq") WHERE "status" = 'pending';
CREATE INDEX "usage_event_pending_seq_idx" ON "usage_event"("seq") WHERE "status" = 'pending';
