-- The ledger over time (docs/retention.md): usage_event, nearly all of the ledger's
-- rows, becomes a table partitioned by month of received_at (UTC), so that a month
-- past the retention is dropped whole (src/ledger/prune.ts) instead of deleted row
-- by row, and usage_daily keeps the per-day totals of what was dropped.
--
-- Existing rows move into the new table's monthly partitions in this migration's
-- one transaction: nothing is lost, and nothing can write while it runs (the table
-- is locked). It rewrites the table once (measured in docs/retention.md).

LOCK TABLE "usage_event" IN ACCESS EXCLUSIVE MODE;

-- The view reads the old table; it is made again over the new one below, unchanged.
DROP VIEW "usage_event_status";

ALTER TABLE "usage_event" RENAME TO "usage_event_unpartitioned";
ALTER INDEX "usage_event_pkey" RENAME TO "usage_event_unpartitioned_pkey";
ALTER INDEX "usage_event_event_id_key" RENAME TO "usage_event_unpartitioned_event_id_key";
ALTER INDEX "usage_event_received_at_idx" RENAME TO "usage_event_unpartitioned_received_at_idx";

-- A unique index on a partitioned table must include the partition key, so the
-- primary key gains received_at (lookups by key and seq still use its prefix) and
-- eventId is no longer unique by index: insert_usage_events below deduplicates
-- under the one-writer lock instead, across every partition.
CREATE TABLE "usage_event" (
    "seq" BIGINT NOT NULL DEFAULT nextval('usage_event_seq_seq'),
    "event_id" TEXT NOT NULL,
    "key_id" INTEGER NOT NULL,
    "count" INTEGER NOT NULL,
    "occurred_at" TIMESTAMPTZ(3),
    "enqueued_at" TIMESTAMPTZ(3),
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attributes" JSONB,

    CONSTRAINT "usage_event_count_positive" CHECK ("count" > 0),
    CONSTRAINT "usage_event_pkey" PRIMARY KEY ("key_id", "seq", "received_at")
) PARTITION BY RANGE ("received_at");

-- The sequence was the old table's (BIGSERIAL): it must not be dropped with it.
ALTER SEQUENCE "usage_event_seq_seq" OWNED BY "usage_event"."seq";

CREATE INDEX "usage_event_event_id_idx" ON "usage_event"("event_id");
CREATE INDEX "usage_event_received_at_idx" ON "usage_event" USING BRIN ("received_at");

-- The partition of the month starting at `month` (UTC), made if missing: created as
-- a table of its own and then attached, because ATTACH PARTITION takes a lock that
-- lets inserts and reads go on (CREATE TABLE ... PARTITION OF would block them).
-- The CHECK constraint lets the attach skip its scan; it is dropped after.
-- Returns the partition's name.
CREATE FUNCTION "usage_event_partition_for"("month" DATE) RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
  m DATE := date_trunc('month', "month")::date;
  part TEXT := 'usage_event_' || to_char(m, 'YYYY_MM');
  lo TEXT := quote_literal(m::text || ' 00:00:00+00');
  hi TEXT := quote_literal((m + interval '1 month')::date::text || ' 00:00:00+00');
BEGIN
  -- Never queue inserts behind it for long (a concurrent DETACH, a long reader): the
  -- caller retries later; the months ahead leave time.
  PERFORM set_config('lock_timeout', '5s', true);
  -- Two workers starting at once make it once.
  PERFORM pg_advisory_xact_lock(726002);
  IF to_regclass(part) IS NOT NULL THEN RETURN part; END IF;
  EXECUTE format('CREATE TABLE %I (LIKE usage_event INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
  EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (received_at >= %s AND received_at < %s)',
                 part, part || '_range', lo, hi);
  EXECUTE format('ALTER TABLE usage_event ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)', part, lo, hi);
  EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, part || '_range');
  RETURN part;
END $$;

-- The partitions of this month (UTC) and the `ahead` months after it: the worker
-- calls this at start and daily (src/ledger/partitions.ts), so the ingest path
-- never makes one. There is no default partition on purpose: a month's partition
-- cannot be attached while a default partition holds rows of that month.
CREATE FUNCTION "usage_event_partitions_ahead"("ahead" INTEGER) RETURNS SETOF TEXT LANGUAGE sql AS $$
  SELECT usage_event_partition_for((date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date)
  FROM generate_series(0, "ahead") AS i
$$;

-- Every month the old rows fall in, then this month and three ahead.
SELECT usage_event_partition_for(m::date)
FROM (SELECT date_trunc('month', min("received_at") AT TIME ZONE 'UTC') AS lo,
             date_trunc('month', max("received_at") AT TIME ZONE 'UTC') AS hi
      FROM "usage_event_unpartitioned") r,
     generate_series(r.lo, r.hi, interval '1 month') AS m
WHERE r.lo IS NOT NULL;
SELECT usage_event_partitions_ahead(3);

INSERT INTO "usage_event" ("seq", "event_id", "key_id", "count", "occurred_at", "enqueued_at", "received_at", "attributes")
SELECT "seq", "event_id", "key_id", "count", "occurred_at", "enqueued_at", "received_at", "attributes"
FROM "usage_event_unpartitioned";

DROP TABLE "usage_event_unpartitioned";
-- Autovacuum never analyzes a partitioned parent: the planner's estimates through the
-- view start from this (the partitions are analyzed as usual).
ANALYZE "usage_event";

-- As in 20261130140000_event_ranges, over the partitioned table.
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
  SELECT c."id", c."status", c."charged_through_seq", c."last_seq" FROM "charge_batch" c
  WHERE c."key_id" = e."key_id" AND c."parent_id" IS NULL AND c."status" <> 'voided' AND c."first_seq" <= e."seq"
  ORDER BY c."first_seq" DESC LIMIT 1
) n ON true
LEFT JOIN LATERAL (SELECT n.* WHERE n."last_seq" >= e."seq") b ON true;

-- The ledger's one event writer at a time (src/ledger/events.ts): takes the writer's
-- lock, then inserts the events whose eventId no partition holds yet, in the order
-- given (seq follows it), each eventId once, and moves the horizon. A function
-- because a VOLATILE function's statements each take a fresh snapshot: the insert
-- below sees every event committed before the lock was granted, which one statement
-- holding the lock in a CTE would not (its snapshot predates the lock). The
-- eventId index can no longer refuse a duplicate across partitions; this lock does.
-- (Under REPEATABLE READ or SERIALIZABLE the snapshot is the transaction's: the
-- meter calls it in READ COMMITTED, its own statement.) An event whose month has no
-- partition is refused with SQLSTATE 55000, not as bad data (23514, which would
-- set it aside as a rejected event): its job is retried until a worker makes the
-- month (src/ledger/partitions.ts).
CREATE FUNCTION "insert_usage_events"(
  "event_ids" TEXT[], "key_ids" INTEGER[], "counts" INTEGER[],
  "occurred" TIMESTAMPTZ[], "enqueued" TIMESTAMPTZ[], "attrs" JSONB[]
) RETURNS TABLE ("inserted_key_id" INTEGER) LANGUAGE plpgsql AS $$
DECLARE
  constraint_name TEXT;
BEGIN
  PERFORM pg_advisory_xact_lock(726001);
  RETURN QUERY
  WITH input AS (
    SELECT DISTINCT ON (i.event_id) i.* FROM unnest(event_ids, key_ids, counts, occurred, enqueued, attrs)
      WITH ORDINALITY AS i(event_id, key_id, count, occurred_at, enqueued_at, attributes, ord)
    ORDER BY i.event_id, i.ord
  ), ins AS (
    INSERT INTO usage_event (event_id, key_id, count, occurred_at, enqueued_at, attributes)
    SELECT n.event_id, n.key_id, n.count, n.occurred_at, n.enqueued_at, n.attributes FROM input n
    WHERE NOT EXISTS (SELECT 1 FROM usage_event e WHERE e.event_id = n.event_id)
    ORDER BY n.ord
    RETURNING usage_event.seq, usage_event.key_id
  ), horizon AS (
    -- An upsert: were the row ever missing, batches would silently stop forming.
    INSERT INTO ingest_horizon (id, max_seq) SELECT 1, max(ins.seq) FROM ins HAVING count(*) > 0
    ON CONFLICT (id) DO UPDATE SET max_seq = GREATEST(ingest_horizon.max_seq, EXCLUDED.max_seq)
  )
  SELECT ins.key_id FROM ins;
EXCEPTION WHEN check_violation THEN
  GET STACKED DIAGNOSTICS constraint_name = CONSTRAINT_NAME;
  IF constraint_name = '' AND SQLERRM LIKE 'no partition of relation%' THEN
    RAISE EXCEPTION 'usage_event has no partition for an event''s month: %', SQLERRM
      USING ERRCODE = '55000', HINT = 'a worker makes them at start and daily (usage_event_partitions_ahead)';
  END IF;
  RAISE;
END $$;

-- Per-day (UTC), per-key totals of every completed day (docs/retention.md): events,
-- uses accepted (received_at) and uses deducted (successful calls by started_at) are
-- written by the daily roll-up (src/ledger/usage-daily.ts) once the day is over; the
-- statuses are written by the retention (src/ledger/prune.ts) just before it drops the
-- day's events (null until then: the events still tell). GET /v1/usage reads them for
-- days before ledger_retention.events_since, the events for the days after; the
-- dashboard's 30 days read the rolled-up days.
CREATE TABLE "usage_daily" (
    "key_id" INTEGER NOT NULL,
    "day" DATE NOT NULL,
    "events" INTEGER NOT NULL,
    "accepted" INTEGER NOT NULL,
    "charged" INTEGER,
    "overage" INTEGER,
    "insufficient" INTEGER,
    "dead" INTEGER,
    "deducted" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "usage_daily_pkey" PRIMARY KEY ("key_id", "day")
);
-- The 30 days' read: the days of a window, all keys.
CREATE INDEX "usage_daily_day_idx" ON "usage_daily"("day");

-- Events received before events_since have been dropped (null: none yet). Moved
-- forward in the transaction that writes their days' totals, before the drop, so a
-- reader never counts a day twice nor misses one. rolled_through: the days up to and
-- including it are rolled up into usage_daily (null: none yet).
CREATE TABLE "ledger_retention" (
    "id" INTEGER NOT NULL DEFAULT 1,
    "events_since" TIMESTAMPTZ(3),
    "rolled_through" DATE,

    CONSTRAINT "ledger_retention_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "ledger_retention_one_row" CHECK ("id" = 1)
);
INSERT INTO "ledger_retention" ("id", "events_since") VALUES (1, NULL);
