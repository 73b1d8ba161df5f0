-- An order event counts once whatever carried it: Douyin may deliver it again under
-- another Msg-Id, and a copied signed message may be sent again by anyone who saw it.
CREATE UNIQUE INDEX "douyin_order_order_id_order_event_key" ON "douyin_order"("order_id", "order_event");

-- A balance subtracts the key's batches settled (charged, or dead: perhaps deducted)
-- after its snapshot: one index range, however long the key's history.
CREATE INDEX "charge_batch_settled_key_id_finished_at_idx" ON "charge_batch"("key_id", "finished_at")
  WHERE "status" IN ('charged', 'dead');
