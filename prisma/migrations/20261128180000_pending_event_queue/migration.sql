-- Unbatched events move to a queue table of their own, so that no index of
-- usage_event covers a column that changes after the insert: both of an event's
-- updates (into its batch, then settled) become HOT updates that write no index
-- entries. A batch records the seq range of its events; with key_id that is the
-- index path to them (usage_event_key_id_seq_idx), replacing the batch_id index.

-- CreateTable
CREATE TABLE "pending_event" (
    "seq" BIGINT NOT NULL,
    "key_id" INTEGER NOT NULL,
    "count" INTEGER NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "pending_event_pkey" PRIMARY KEY ("seq")
);

-- CreateIndex
CREATE INDEX "pending_event_key_id_seq_idx" ON "pending_event"("key_id", "seq");

-- AlterTable
ALTER TABLE "charge_batch" ADD COLUMN "first_seq" BIGINT,
ADD COLUMN "last_seq" BIGINT;

-- Hand-written: carry over what is already there.
INSERT INTO "pending_event" ("seq", "key_id", "count", "received_at")
SELECT "seq", "key_id", "count", "received_at" FROM "usage_event" WHERE "batch_id" IS NULL;

UPDATE "charge_batch" b SET "first_seq" = r.lo, "last_seq" = r.hi
FROM (SELECT "batch_id", min("seq") AS lo, max("seq") AS hi FROM "usage_event"
      WHERE "batch_id" IS NOT NULL GROUP BY "batch_id") r
WHERE r."batch_id" = b."id";

DROP INDEX "usage_event_unbatched_key_seq_idx";
DROP INDEX "usage_event_unbatched_seq_idx";
DROP INDEX "usage_event_batch_id_idx";
