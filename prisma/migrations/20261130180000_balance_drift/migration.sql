-- Reconciliation's findings: per key and check, Douyin's remaining times against
-- what the ledger expected from the previous snapshot. Appended, never updated;
-- drift is reported, never corrected.
CREATE TABLE "balance_drift" (
    "id" BIGSERIAL NOT NULL,
    "open_id" TEXT NOT NULL,
    "service_id" TEXT NOT NULL,
    "service_mode_id" TEXT NOT NULL,
    "is_test_env" BOOLEAN NOT NULL,
    "checked_at" TIMESTAMPTZ(3) NOT NULL,
    "previous_remaining" INTEGER NOT NULL,
    "previous_as_of" TIMESTAMPTZ(3) NOT NULL,
    "charged" INTEGER NOT NULL,
    "uncertain" INTEGER NOT NULL,
    "expected" INTEGER NOT NULL,
    "actual" INTEGER NOT NULL,
    "drift" INTEGER NOT NULL,
    "evidence" JSONB NOT NULL,

    CONSTRAINT "balance_drift_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "balance_drift_key_checked_at_idx" ON "balance_drift"("open_id", "service_id", "service_mode_id", "is_test_env", "checked_at");
CREATE INDEX "balance_drift_checked_at_idx" ON "balance_drift"("checked_at");
