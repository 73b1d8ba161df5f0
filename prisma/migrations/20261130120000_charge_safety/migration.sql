-- Money safety: the idempotency-window clock, run leases with fencing tokens,
-- operator resolution of dead batches, and alerts for success answers that
-- arrived for a batch no longer open.

-- A batch resolved as uncharged by an operator: its events went back to pending
-- and are charged under a new out_trade_no; this out_trade_no is never sent again.
ALTER TYPE "batch_status" ADD VALUE 'voided';

-- When the batch's out_trade_no was first sent: Douyin remembers it for a month
-- from then, so nothing re-sends it past a safe fraction of that window.
ALTER TABLE "charge_batch" ADD COLUMN "first_attempt_at" TIMESTAMPTZ(3),
ADD COLUMN "resolved_as" TEXT,
ADD COLUMN "resolved_by" TEXT;

-- Batches formed before this column existed may have been sent with no attempt
-- recorded (a crash between the call and its record): count from their first
-- recorded attempt, or else from their creation, whichever is earlier (the safe side).
UPDATE "charge_batch" b SET "first_attempt_at" = LEAST(b."created_at",
  (SELECT min(a."started_at") FROM "call_attempt" a WHERE a."batch_id" = b."id"));

-- A charge run's lease on its key. lease_token only ever grows: it is the fencing
-- token a run shows when it sends or settles, so a run that lost its lease (a
-- stall, a Redis restart) can no longer change the key's batches. No index covers
-- these columns, so taking and renewing a lease are HOT updates.
ALTER TABLE "meter_key" ADD COLUMN "lease_token" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN "lease_owner" TEXT,
ADD COLUMN "lease_until" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "charge_alert" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "kind" TEXT NOT NULL,
    "batch_id" BIGINT,
    "out_trade_no" VARCHAR(64),
    "details" JSONB,

    CONSTRAINT "charge_alert_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "charge_alert_at_idx" ON "charge_alert"("at");
