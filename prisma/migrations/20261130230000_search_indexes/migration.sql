-- The operators' search (GET /api/search, src/ledger/search.ts) finds a call attempt
-- by Douyin's logid with an index probe, like everything else it looks up. Partial:
-- an attempt that got no answer has no logid, and indexing those entries would cost
-- such an attempt one more index insert for nothing.
CREATE INDEX "call_attempt_logid_idx" ON "call_attempt"("logid") WHERE "logid" IS NOT NULL;
