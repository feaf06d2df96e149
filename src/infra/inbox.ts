import type { Inbox } from '../app/inbox.ts';
import type { Queryable } from '../app/ports/database.ts';

/** The inbox on `processed_events`; on a transaction's Queryable it commits with the transaction. */
export function createInbox(db: Queryable): Inbox {
  return {
    async mark(consumer, message) {
      await db.query(
        `INSERT INTO processed_events (event_id, aggregate_id, event_type, processed_by)
         VALUES ($1, $2, $3, $4) ON CONFLICT (event_id, processed_by) DO NOTHING`,
        [message.event_id, message.aggregate_id, message.event_type, consumer],
      );
    },
  };
}
