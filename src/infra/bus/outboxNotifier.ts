import type { Database } from '../../app/ports/database.ts';

/** The channel outbox relays LISTEN on. */
export const OUTBOX_CHANNEL = 'outbox';

/**
 * Tells relays in other processes that the outbox has new rows: `NOTIFY outbox`, sent after the
 * append has committed, in a statement of its own, and coalesced — at most one in flight per
 * process, plus one more if appends happened meanwhile.
 *
 * Not a trigger in the append: a transaction that notifies holds PostgreSQL's notification-queue
 * lock through its commit, WAL flush included, so notifying appends commit one at a time (measured
 * here: 16 writers fell from 5,764 to 2,676 appends/s). A notify-only statement writes no WAL and
 * holds that lock for microseconds. A notification lost in a crash costs one poll interval.
 */
export function outboxNotifier(db: Database, onError: (error: unknown) => void = () => {}): () => void {
  let inFlight = false;
  let again = false;
  const send = async () => {
    do {
      again = false;
      await db.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, '']).catch(onError);
    } while (again);
    inFlight = false;
  };
  return () => {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    void send();
  };
}
