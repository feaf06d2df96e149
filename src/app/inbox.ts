import type { Queryable } from './ports/database.ts';
import type { EventMessage } from './messages.ts';

/** Records that a consumer handled an event; a second record of the same pair is a no-op. */
export async function markProcessed(db: Queryable, consumer: string, message: EventMessage): Promise<void> {
  await db.query(
    `INSERT INTO processed_events (event_id, aggregate_id, event_type, processed_by)
     VALUES ($1, $2, $3, $4) ON CONFLICT (event_id, processed_by) DO NOTHING`,
    [message.event_id, message.aggregate_id, message.event_type, consumer],
  );
}
