-- Partial indexes and fillfactor are hand-written (not expressible in schema.prisma).
-- A pending event is exactly one that is in no batch yet, so the partial indexes
-- that find pending events are keyed on "batch_id" IS NULL instead of "status".
-- With no index mentioning "status", settling a batch (batched -> charged /
-- insufficient / dead / overage) changes no indexed column and PostgreSQL can do
-- it as a HOT update, writing no index entries; fillfactor leaves each page room
-- for those new row versions. Measured with `npm run bench` (see README).
DROP INDEX "usage_event_pending_key_seq_idx";
DROP INDEX "usage_event_pending_seq_idx";
CREATE INDEX "usage_event_unbatched_key_seq_idx" ON "usage_event"("key_id", "seq") WHERE "batch_id" IS NULL;
CREATE INDEX "usage_event_unbatched_seq_idx" ON "usage_event"("seq") WHERE "batch_id" IS NULL;
ALTER TABLE "usage_event" SET (fillfactor = 75);

-- No foreign keys on usage_event (see the comment in schema.prisma): each one ran a
-- trigger and took a shared lock on the parent row for every inserted or batched
-- event. The ledger's statements keep key_id and batch_id valid.
ALTER TABLE "usage_event" DROP CONSTRAINT "usage_event_key_id_fkey";
ALTER TABLE "usage_event" DROP CONSTRAINT "usage_event_batch_id_fkey";
