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

-- Old workers must not write while the ledger changes shape (stop them first; this
-- makes any still running wait, then fail on the columns that are gone).
LOCK TABLE "usage_event", "pending_event", "meter_key", "charge_batch" IN EXCLUSIVE MODE;

-- Every batch must hold a contiguous range of its key's events, and a key's events
-- in no batch must be its tail. Before this migration, resolving a batch as
-- uncharged sent its events back to pending below events of the same key already
-- batched, and a later batch could take them with newer ones around another
-- batch's. Such a key's events get fresh seq values, batch by batch in the order
-- the batches were formed, then its pending ones, each run in its old order.
UPDATE "usage_event" u SET "seq" = r.new_seq
FROM (SELECT old_seq, nextval(pg_get_serial_sequence('usage_event', 'seq')) AS new_seq
      FROM (SELECT e."seq" AS old_seq FROM "usage_event" e
            WHERE e."key_id" IN (
              -- keys where an event lies inside the seq span of a batch it is not in
              SELECT s."key_id" FROM (
                SELECT "key_id", "batch_id", min("seq") AS lo, max("seq") AS hi FROM "usage_event"
                WHERE "batch_id" IS NOT NULL GROUP BY "key_id", "batch_id") s
              JOIN "usage_event" o ON o."key_id" = s."key_id" AND o."seq" BETWEEN s.lo AND s.hi
                                  AND o."batch_id" IS DISTINCT FROM s."batch_id"
              UNION
              -- keys with an event in no batch below a batched one
              SELECT p."key_id" FROM "usage_event" p
              WHERE p."batch_id" IS NULL
                AND EXISTS (SELECT 1 FROM "usage_event" b
                            WHERE b."key_id" = p."key_id" AND b."batch_id" IS NOT NULL AND b."seq" > p."seq"))
            ORDER BY e."key_id", e."batch_id" NULLS LAST, e."seq") ordered) r
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
-- One writer at a time hands out seq in commit order only while no session caches a block.
ALTER SEQUENCE "usage_event_seq_seq" CACHE 1;
-- A batch's prefix rule (running sum of counts) needs positive counts; the event schema already refuses others.
ALTER TABLE "usage_event" ADD CONSTRAINT "usage_event_count_positive" CHECK ("count" > 0);
-- The key's events in seq order are the primary key; seq alone needs no index of its own.
ALTER TABLE "usage_event" DROP CONSTRAINT "usage_event_pkey";
ALTER TABLE "usage_event" ADD CONSTRAINT "usage_event_pkey" PRIMARY KEY ("key_id", "seq");
DROP INDEX "usage_event_key_id_seq_idx";
DROP TYPE "event_status";

-- The dashboard's events-per-minute walks received_at; a BRIN index costs an insert
-- almost nothing (rows arrive in received_at order).
CREATE INDEX "usage_event_received_at_idx" ON "usage_event" USING BRIN ("received_at");

-- A partial batch's events are charged up to this seq, overage after: fixed when
-- the batch settles, so no reader re-sums the batch's events.
ALTER TABLE "charge_batch" ADD COLUMN "charged_through_seq" BIGINT;
UPDATE "charge_batch" b SET "charged_through_seq" = coalesce((
  SELECT max(r."seq") FROM (
    SELECT e."seq", sum(e."count") OVER (ORDER BY e."seq") AS running FROM "usage_event" e
    WHERE e."key_id" = b."key_id" AND e."seq" BETWEEN b."first_seq" AND b."last_seq") r
  WHERE r.running <= b."charged_count"), b."first_seq" - 1)
WHERE b."status" = 'partial' AND b."parent_id" IS NULL;

-- The batch whose range holds an event: by key and range start.
CREATE INDEX "charge_batch_key_id_first_seq_idx" ON "charge_batch"("key_id", "first_seq") WHERE "parent_id" IS NULL;

-- A key's open batches (every charge run looks for the newest), small however long the history.
CREATE INDEX "charge_batch_open_key_id_id_idx" ON "charge_batch"("key_id", "id") WHERE "status" = 'open';

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
           CASE WHEN e."seq" <= b."charged_through_seq" THEN 'charged' ELSE 'overage' END
         ELSE b."status"::text
       END AS "status"
FROM "usage_event" e
LEFT JOIN LATERAL (
  -- Ranges are disjoint (a voided batch's successor repeats its range, and the
  -- voided one is left out): the nearest batch starting at or before the event is
  -- the only one that can hold it.
  SELECT c."id", c."status", c."charged_through_seq", c."last_seq" FROM "charge_batch" c
  WHERE c."key_id" = e."key_id" AND c."parent_id" IS NULL AND c."status" <> 'voided' AND c."first_seq" <= e."seq"
  ORDER BY c."first_seq" DESC LIMIT 1
) n ON true
LEFT JOIN LATERAL (SELECT n.* WHERE n."last_seq" >= e."seq") b ON true;
