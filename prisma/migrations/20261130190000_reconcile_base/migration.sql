-- Reconciliation compares with its own previous check, not with any snapshot: a
-- balance's read in between would otherwise absorb a drift before it is seen.
ALTER TABLE "balance_snapshot" DROP CONSTRAINT "balance_snapshot_source_check";
ALTER TABLE "balance_snapshot" ADD CONSTRAINT "balance_snapshot_source_check"
  CHECK ("source" IN ('webhook', 'purchase_list', 'reconcile'));

-- Each key's latest finding is marked (the others are history), with the drift
-- summed since the key's first check: a drift stays listed after the next check.
ALTER TABLE "balance_drift" ADD COLUMN "latest" BOOLEAN NOT NULL DEFAULT true;
ALTER TABLE "balance_drift" ADD COLUMN "cumulative_drift" INTEGER NOT NULL DEFAULT 0;
UPDATE "balance_drift" SET "cumulative_drift" = "drift";
UPDATE "balance_drift" d SET "latest" = false
WHERE EXISTS (SELECT 1 FROM "balance_drift" n
              WHERE n."open_id" = d."open_id" AND n."service_id" = d."service_id"
                AND n."service_mode_id" = d."service_mode_id" AND n."is_test_env" = d."is_test_env"
                AND (n."checked_at", n."id") > (d."checked_at", d."id"));
CREATE UNIQUE INDEX "balance_drift_latest_key" ON "balance_drift"("open_id", "service_id", "service_mode_id", "is_test_env") WHERE "latest";

-- The keys with a batch settled since a time (reconciliation's keys to check).
CREATE INDEX "charge_batch_finished_at_idx" ON "charge_batch"("finished_at") WHERE "finished_at" IS NOT NULL;
