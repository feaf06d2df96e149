import type { Options } from 'amqplib';
import type { EventMessage } from '../../../app/messages.ts';
import type { OutboxRow } from '../outboxRow.ts';

export type { OutboxRow } from '../outboxRow.ts';

/**
 * Claims unpublished rows, oldest first, skipping rows another relay holds and rows this relay is
 * backing off from ($1). `outbox.id`, not the ::text alias: the alias would sort as text and
 * defeat the partial index on unpublished rows. Never "id > last seen": ids commit out of order.
 */
export const CLAIM_SQL = `
SELECT id::text AS id, event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata
FROM outbox
WHERE NOT published AND NOT (id = ANY($1::bigint[]))
ORDER BY outbox.id
LIMIT $2
FOR UPDATE SKIP LOCKED`;

export const MARK_SQL =
  'UPDATE outbox SET published = TRUE, published_at = now() WHERE id = ANY($1::bigint[])';

/**
 * The message body: the envelope as JSON (amounts are decimal strings, so no precision loss). The
 * relay does not validate it: every consumer's bus does, before the consumer sees it.
 */
export function messageBody(row: OutboxRow): Buffer {
  const message: Omit<OutboxRow, 'id'> = {
    event_id: row.event_id,
    aggregate_id: row.aggregate_id,
    aggregate_type: row.aggregate_type,
    event_type: row.event_type,
    version: row.version,
    event_data: row.event_data,
    metadata: row.metadata,
  };
  return Buffer.from(JSON.stringify(message));
}

/**
 * Properties of a published event: persistent; mandatory when `routed` — the topology binds a
 * queue to its type, so the broker must route it, and an unroutable one comes back instead of
 * being confirmed and dropped (a lost binding shows up at once). Types no queue takes (PriceQuoted,
 * SwapExecuting…, kept for consumers to come) are published without it: the broker confirms and
 * drops them, where mandatory would return them and the relay would retry them for ever.
 * messageId = event_id so consumers and the return handler identify it, and the envelope in
 * headers so consumers can route and deduplicate without parsing the body.
 */
export function publishOptions(row: OutboxRow, routed: boolean): Options.Publish {
  const metadata = row.metadata as Partial<EventMessage['metadata']> | null;
  return {
    persistent: true,
    mandatory: routed,
    contentType: 'application/json',
    messageId: row.event_id,
    type: row.event_type,
    appId: 'market-order-saga',
    headers: {
      event_id: row.event_id,
      aggregate_id: row.aggregate_id,
      aggregate_type: row.aggregate_type,
      version: row.version,
      correlation_id: metadata?.correlation_id ?? null,
      causation_id: metadata?.causation_id ?? null,
    },
  };
}
