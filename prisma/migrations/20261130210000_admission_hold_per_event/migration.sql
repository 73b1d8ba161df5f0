-- A hold per admitted event, until the event is in the ledger (then its uses are in
-- the balance's pending uses, and the hold no longer counts) or it expires (a
-- safety net for an event that never arrives). Per event, a retried or duplicated
-- event is held once. Holds are transient: the table is made anew.
DROP TABLE "admission_hold";
CREATE TABLE "admission_hold" (
    "event_id" TEXT NOT NULL,
    "open_id" TEXT NOT NULL,
    "service_id" TEXT NOT NULL,
    "service_mode_id" TEXT NOT NULL,
    "is_test_env" BOOLEAN NOT NULL,
    "uses" INTEGER NOT NULL,
    "until" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "admission_hold_pkey" PRIMARY KEY ("event_id")
);
CREATE INDEX "admission_hold_key_until_idx" ON "admission_hold"("open_id", "service_id", "service_mode_id", "is_test_env", "until");
CREATE INDEX "admission_hold_until_idx" ON "admission_hold"("until");
