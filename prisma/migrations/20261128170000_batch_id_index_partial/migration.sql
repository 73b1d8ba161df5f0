-- Hand-written (not expressible in schema.prisma): the batch_id index only holds
-- events that are in a batch. Every new event has batch_id NULL; indexing those
-- entries cost every ingested event one more index insert for nothing (the
-- unbatched events have their own partial indexes). Lookups by batch_id = $1
-- still use it.
DROP INDEX "usage_event_batch_id_idx";
CREATE INDEX "usage_event_batch_id_idx" ON "usage_event"("batch_id") WHERE "batch_id" IS NOT NULL;
