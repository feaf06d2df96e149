import { createBatcher } from '../app/intakeBatcher.ts';
import type { BatchingOptions } from '../app/intakeBatcher.ts';
import type { Inbox } from '../app/inbox.ts';
import type { EventMessage } from '../app/messages.ts';
import type { Queryable } from '../app/ports/database.ts';

interface Mark {
  readonly consumer: string;
  readonly message: EventMessage;
}

/** Every mark of a batch in one statement; a pair already recorded (or twice in it) is left as it is. */
const MARK_ALL_SQL = `
INSERT INTO processed_events (event_id, aggregate_id, event_type, processed_by)
SELECT r.event_id, r.aggregate_id, r.event_type, r.processed_by
FROM jsonb_to_recordset($1::text::jsonb) AS r(event_id uuid, aggregate_id uuid, event_type text, processed_by text)
ON CONFLICT (event_id, processed_by) DO NOTHING`;

/**
 * The inbox on `processed_events`; on a transaction's Queryable it commits with the transaction.
 * With `batching`, marks made at the same time share one statement (group commit, see
 * createBatcher): for a consumer whose mark is a statement of its own (the notifier's), under
 * load that is one commit for several messages instead of one each.
 */
export function createInbox(db: Queryable, batching?: BatchingOptions): Inbox {
  const markAll = async (marks: readonly Mark[]) => {
    await db.query(MARK_ALL_SQL, [
      JSON.stringify(
        marks.map(({ consumer, message }) => ({
          event_id: message.event_id,
          aggregate_id: message.aggregate_id,
          event_type: message.event_type,
          processed_by: consumer,
        })),
      ),
    ]);
  };
  if (!batching) return { mark: (consumer, message) => markAll([{ consumer, message }]) };
  // A statement that fails fails every mark in it: each message is then delivered again.
  const batched = createBatcher<Mark, void>(async (marks) => {
    await markAll(marks);
    return marks.map((): PromiseFulfilledResult<void> => ({ status: 'fulfilled', value: undefined }));
  }, batching);
  return { mark: (consumer, message) => batched({ consumer, message }) };
}
