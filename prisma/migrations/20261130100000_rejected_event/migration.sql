-- Events the ledger refused (see RejectedEvent in schema.prisma): recorded with
-- their reason instead of failing, and retrying forever, the insert of their job.

-- CreateTable
CREATE TABLE "rejected_event" (
    "id" BIGSERIAL NOT NULL,
    "event_id" TEXT,
    "raw" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "source" TEXT NOT NULL,
    "job_key" TEXT NOT NULL,
    "job_index" INTEGER NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "rejected_event_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "rejected_event_job_key_job_index_key" ON "rejected_event"("job_key", "job_index");
