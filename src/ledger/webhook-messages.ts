// Douyin's webhook messages (douyin_webhook_message): each signed message stored
// raw before it is answered, once per Msg-Id, and marked when processed.
import type { Sql } from './db.js';

export interface StoredMessage {
  id: bigint;
  /** The Msg-Id was stored already: a redelivery. */
  duplicate: boolean;
}

/** Stores a message unless its Msg-Id is stored already. */
export async function storeWebhookMessage(
  db: Sql,
  m: { msgId: string; event: string; body: string },
): Promise<StoredMessage> {
  const inserted = await db.$queryRaw<{ id: bigint }[]>`
    INSERT INTO douyin_webhook_message (msg_id, event, body) VALUES (${m.msgId}, ${m.event}, ${m.body})
    ON CONFLICT (msg_id) DO NOTHING
    RETURNING id`;
  if (inserted[0]) return { id: inserted[0].id, duplicate: false };
  // Stored already, perhaps by a delivery that committed while this one waited on
  // it: a new statement sees that row (the insert's own snapshot did not).
  const existing = await db.$queryRaw<{ id: bigint }[]>`
    SELECT id FROM douyin_webhook_message WHERE msg_id = ${m.msgId}`;
  return { id: existing[0]!.id, duplicate: true };
}

export interface PendingMessage {
  id: bigint;
  event: string;
  body: string;
  receivedAt: Date;
}

/**
 * Up to `limit` messages not processed yet, oldest first, locked for this
 * transaction (others processing at the same time take the next ones).
 */
export async function lockUnprocessedMessages(tx: Sql, limit: number): Promise<PendingMessage[]> {
  return tx.$queryRaw<PendingMessage[]>`
    SELECT id, event, body, received_at AS "receivedAt" FROM douyin_webhook_message
    WHERE processed_at IS NULL ORDER BY id LIMIT ${limit} FOR UPDATE SKIP LOCKED`;
}

/** Marks a message processed, with why it could not be used (null when it was). */
export async function markMessageProcessed(tx: Sql, id: bigint, error: string | null): Promise<void> {
  await tx.$executeRaw`
    UPDATE douyin_webhook_message SET processed_at = now(), error = ${error} WHERE id = ${id}`;
}
