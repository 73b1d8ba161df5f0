-- Admission control's holds: uses admitted at the door (HTTP, import) before their
-- events reach the ledger. A balance counts them until they expire; by then the
-- events are in the ledger's pending uses (counted twice meanwhile: the safe side).
CREATE TABLE "admission_hold" (
    "id" BIGSERIAL NOT NULL,
    "open_id" TEXT NOT NULL,
    "service_id" TEXT NOT NULL,
    "service_mode_id" TEXT NOT NULL,
    "is_test_env" BOOLEAN NOT NULL,
    "uses" INTEGER NOT NULL,
    "until" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "admission_hold_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "admission_hold_key_until_idx" ON "admission_hold"("open_id", "service_id", "service_mode_id", "is_test_env", "until");
