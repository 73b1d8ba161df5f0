-- The ledger at the database's speed: an event is written once and never updated.
--
-- Events are written by one writer at a time (the ingest transaction takes a
-- transaction-level advisory lock), so every row of a committed write has a lower
-- seq than any row of a later one; each writer records the highest seq it
-- committed in ingest_horizon. A batch takes its key's events with seq above the
-- key's batched_seq and up to the horizon: no write still in flight can add an
-- event inside that range. An event's status is derived from the batch whose
-- range holds it (the view usage_event_status below), so settling a batch writes
-- one row, not one per event. The sequence keeps CACHE 1 (the default): a cached
-- block would hand one writer numbers below another's.

-- A key's events in no batch must be its tail. Before this migration, resolving a
-- batch as uncharged sent its events back to pending below events of the same key
-- already batched: give such a key's pending events fresh seq values, in their old order.
UPDATE "usage_event" u SET "seq" = r.new_seq
FROM (SELECT old_seq, nextval(pg_get_serial_sequence('usage_event', 'seq')) AS new_seq
      FROM (SELECT p."seq" AS old_seq FROM "usage_event" p
            WHERE p."batch_id" IS NULL AND p."key_id" IN (
              SELECT q."key_id" FROM "usage_event" q
              WHERE q."batch_id" IS NULL
                AND EXISTS (SELECT 1 FROM "usage_event" b
                            WHERE b."key_id" = q."key_id" AND b."batch_id" IS NOT NULL AND b."seq" > q."seq"))
            ORDER BY p."seq") misplaced) r
WHERE u."seq" = r.old_seq;

-- CreateTable
CREATE TABLE "ingest_horizon" (
    "id" INTEGER NOT NULL DEFAULT 1,
    "max_seq" BIGINT NOT NULL,

    CONSTRAINT "ingest_horizon_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "ingest_horizon_one_row" CHECK ("id" = 1)
);
INSERT INTO "ingest_horizon" ("id", "max_seq") SELECT 1, coalesce(max("seq"), 0) FROM "usage_event";

-- Every event of the key up to batched_seq is in a batch; the key's events above it are pending.
ALTER TABLE "meter_key" ADD COLUMN "batched_seq" BIGINT NOT NULL DEFAULT 0;

-- Batches formed before: their range is their own events' seq range.
UPDATE "charge_batch" b SET "first_seq" = r.lo, "last_seq" = r.hi
FROM (SELECT "batch_id", min("seq") AS lo, max("seq") AS hi FROM "usage_event"
      WHERE "batch_id" IS NOT NULL GROUP BY "batch_id") r
WHERE r."batch_id" = b."id";
UPDATE "charge_batch" SET "first_seq" = NULL, "last_seq" = NULL WHERE "status" = 'voided';
UPDATE "meter_key" k SET "batched_seq" = coalesce(r.first_pending - 1, r.top)
FROM (SELECT "key_id", max("seq") AS top, min("seq") FILTER (WHERE "batch_id" IS NULL) AS first_pending
      FROM "usage_event" GROUP BY "key_id") r
WHERE r."key_id" = k."id";

DROP TABLE "pending_event";
ALTER TABLE "usage_event" DROP COLUMN "status", DROP COLUMN "batch_id";
ALTER TABLE "usage_event" SET (fillfactor = 100);
-- The key's events in seq order are the primary key; seq alone needs no index of its own.
ALTER TABLE "usage_event" DROP CONSTRAINT "usage_event_pkey";
ALTER TABLE "usage_event" ADD CONSTRAINT "usage_event_pkey" PRIMARY KEY ("key_id", "seq");
DROP INDEX "usage_event_key_id_seq_idx";
DROP TYPE "event_status";

-- The dashboard's events-per-minute walks received_at; a BRIN index costs an insert
-- almost nothing (rows arrive in received_at order).
CREATE INDEX "usage_event_received_at_idx" ON "usage_event" USING BRIN ("received_at");

-- The batch whose range holds an event: by key and range start.
CREATE INDEX "charge_batch_key_id_first_seq_idx" ON "charge_batch"("key_id", "first_seq") WHERE "parent_id" IS NULL;

-- A charge run's lease moves to a table of its own, so that charging never holds a
-- key's row across a commit.
CREATE TABLE "key_lease" (
    "key_id" INTEGER NOT NULL,
    "token" BIGINT NOT NULL,
    "owner" TEXT,
    "until" TIMESTAMPTZ(3),

    CONSTRAINT "key_lease_pkey" PRIMARY KEY ("key_id")
);
INSERT INTO "key_lease" ("key_id", "token", "owner", "until")
SELECT "id", "lease_token", "lease_owner", "lease_until" FROM "meter_key" WHERE "lease_token" > 0;
ALTER TABLE "meter_key" DROP COLUMN "lease_token", DROP COLUMN "lease_owner", DROP COLUMN "lease_until";

-- An event's status, derived from the batch whose range holds it (a voided batch's
-- range is held again by its successor): pending in none; batched while the batch
-- is open; charged, insufficient or dead as the batch; in a partial batch, charged
-- in order while its uses fit the batch's charged_count, overage after.
CREATE VIEW "usage_event_status" AS
SELECT e."seq", e."event_id", e."key_id", e."count", e."occurred_at", e."enqueued_at", e."received_at",
       e."attributes", b."id" AS "batch_id",
       CASE
         WHEN b."id" IS NULL THEN 'pending'
         WHEN b."status" = 'open' THEN 'batched'
         WHEN b."status" = 'partial' THEN
           CASE WHEN (SELECT sum(x."count") FROM "usage_event" x
                      WHERE x."key_id" = e."key_id" AND x."seq" BETWEEN b."first_seq" AND e."seq")
                     <= b."charged_count" THEN 'charged' ELSE 'overage' END
         ELSE b."status"::text
       END AS "status"
FROM "usage_event" e
LEFT JOIN LATERAL (
  SELECT c."id", c."status", c."first_seq", c."charged_count" FROM "charge_batch" c
  WHERE c."key_id" = e."key_id" AND c."parent_id" IS NULL AND c."status" <> 'voided'
    AND c."first_seq" <= e."seq" AND c."last_seq" >= e."seq"
  ORDER BY c."first_seq" DESC LIMIT 1
) b ON true;
