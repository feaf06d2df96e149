import { createBatcher, inRounds } from '../../app/intakeBatcher.ts';
import type { BatchingOptions } from '../../app/intakeBatcher.ts';
import type { Queryable } from '../../app/ports/database.ts';
import { givenUpPrefix, NO_ERROR } from '../../app/notifications/notificationStore.ts';
import type {
  FirstAttempt,
  HeldNotification,
  Lease,
  NotificationDraft,
  NotificationStore,
} from '../../app/notifications/notificationStore.ts';

/*
 * One statement for a message's rows ($1, a JSON array): each is created held by this notifier,
 * waiting for the retry loop, or final (skipped), or left as it is when it exists. The rows it
 * made come back by channel.
 */
const CREATE_ALL_SQL = `
INSERT INTO notifications
  (event_id, channel, order_id, user_id, recipient, status, subject, text, error, attempts,
   lease_token, lease_until, next_attempt_at, created_at)
SELECT r.event_id, r.channel, r.order_id, r.user_id, r.recipient, r.status, r.subject, r.text, r.error,
  r.attempts, r.lease_token, r.lease_until, r.next_attempt_at, r.created_at
FROM jsonb_to_recordset($1::text::jsonb) AS r(event_id uuid, channel text, order_id uuid, user_id text,
  recipient text, status text, subject text, text text, error text, attempts int, lease_token uuid,
  lease_until timestamptz, next_attempt_at timestamptz, created_at timestamptz)
ON CONFLICT (event_id, channel) DO NOTHING
RETURNING event_id, channel, attempts`;

type CreateMode = 'held' | 'waiting' | 'skipped';

/** How a draft's row is created: held, waiting for the retry loop, or final (skipped). */
function modeOf(draft: NotificationDraft, waitReason: string | undefined): CreateMode {
  return draft.skipped !== undefined ? 'skipped' : waitReason !== undefined ? 'waiting' : 'held';
}

/** A draft's row as created in `mode` with `lease`: the columns of CREATE_ALL_SQL, by name. */
function rowOf(draft: NotificationDraft, mode: CreateMode, lease: Lease, waitReason: string | undefined) {
  const held = mode === 'held';
  return {
    event_id: draft.event_id,
    channel: draft.channel,
    order_id: draft.order_id,
    user_id: draft.user_id,
    recipient: draft.recipient,
    status: mode === 'skipped' ? 'skipped' : 'sending',
    subject: draft.subject,
    text: draft.text,
    error: draft.skipped ?? waitReason ?? null,
    attempts: held ? 1 : 0,
    lease_token: held ? lease.token : null,
    lease_until: held ? lease.until : null,
    next_attempt_at: mode === 'waiting' ? lease.now : null,
    created_at: lease.now,
  };
}

/** What a draft's first attempt is once its row was created in `mode` (`attempts` as stored). */
function created(draft: NotificationDraft, mode: CreateMode, lease: Lease, attempts: number): FirstAttempt {
  if (mode !== 'held') return { status: mode };
  const { skipped: _skipped, ...fields } = draft;
  return {
    status: 'held',
    notification: { ...fields, attempts, created_at: lease.now, token: lease.token },
  };
}

/** When a row still 'sending' is due (see migrations/008_notification_retries.sql). */
const DUE_AT = 'coalesce(lease_until, next_attempt_at, created_at)';

const CLAIM_DUE_SQL = `
WITH due AS (
  SELECT event_id, channel FROM notifications
  WHERE status = 'sending' AND channel = $1 AND ${DUE_AT} <= $2
  ORDER BY ${DUE_AT}
  LIMIT $3
  FOR UPDATE SKIP LOCKED)
UPDATE notifications AS n
SET attempts = n.attempts + 1, lease_token = $4, lease_until = $5, next_attempt_at = NULL
FROM due
WHERE n.event_id = due.event_id AND n.channel = due.channel
RETURNING n.event_id, n.channel, n.order_id, n.user_id, n.recipient, coalesce(n.subject, n.text) AS subject,
  n.text, n.attempts, n.created_at`;

/** How an existing row stands for a draft that found it (the draft's own row was not created). */
async function standingOf(db: Queryable, draft: NotificationDraft, now: Date): Promise<FirstAttempt> {
  const [row] = await db.query<{ status: string; lease_until: Date | null }>(
    'SELECT status, lease_until FROM notifications WHERE event_id = $1 AND channel = $2',
    [draft.event_id, draft.channel],
  );
  if (row?.status !== 'sending') return { status: 'settled' };
  if (row.lease_until && row.lease_until > now) return { status: 'busy', leaseUntil: row.lease_until };
  return { status: 'queued' };
}

/** The records of several sends in one statement (migrations/016_notification_records.sql). */
const RECORD_ALL_SQL = 'SELECT ord, held FROM record_notifications($1::text::jsonb)';

type CreateCall = Parameters<NotificationStore['createAll']>;
type RecordCall = Parameters<NotificationStore['record']>;

const fulfilled = <T>(value: T): PromiseFulfilledResult<T> => ({ status: 'fulfilled', value });

/**
 * NotificationStore on the `notifications` table (migrations 006, 008), for PostgreSQL and PGlite
 * alike. With `batching`, the notifier's two statements per message (its rows' create, a send's
 * record) are shared by the messages in hand at the same time (group commit, see createBatcher):
 * under load, one commit for several notifications instead of one each.
 */
export function createNotificationStore(db: Queryable, batching?: BatchingOptions): NotificationStore {
  /** The rows of several messages in one statement; each row credited to the first call that asked for it. */
  const createCalls = async (calls: readonly CreateCall[]) => {
    const modes = calls.map(([entries]) => entries.map(({ draft, waitReason }) => modeOf(draft, waitReason)));
    const rows = calls.flatMap(([entries, lease], c) =>
      entries.map(({ draft, waitReason }, i) => rowOf(draft, modes[c]?.[i] ?? 'held', lease, waitReason)),
    );
    const made = await db.query<{ event_id: string; channel: string; attempts: number }>(CREATE_ALL_SQL, [
      JSON.stringify(rows),
    ]);
    const attemptsOf = new Map(made.map((row) => [`${row.event_id}/${row.channel}`, row.attempts]));
    return Promise.all(
      calls.map(([entries, lease], c) =>
        Promise.all(
          entries.map(async ({ draft }, i) => {
            const key = `${draft.event_id.toLowerCase()}/${draft.channel}`;
            const attempts = attemptsOf.get(key);
            // Not made: the row existed (another delivery of the message made it), or an earlier
            // call of the batch asked for the same row and holds it.
            if (attempts === undefined) return standingOf(db, draft, lease.now);
            attemptsOf.delete(key);
            return created(draft, modes[c]?.[i] ?? 'held', lease, attempts);
          }),
        ),
      ),
    );
  };

  /** Several records in one statement: `heldLease` for each, in the calls' order. */
  const recordCalls = async (calls: readonly RecordCall[]) => {
    const input = calls.map(([held, outcome], ord) => ({
      ord,
      event_id: held.event_id,
      channel: held.channel,
      status: outcome.status,
      sent_at: outcome.status === 'sent' ? outcome.at : null,
      error: outcome.status === 'sent' ? null : outcome.reason,
      token: held.token,
    }));
    const rows = await db.query<{ ord: number; held: boolean }>(RECORD_ALL_SQL, [JSON.stringify(input)]);
    const heldAt = new Set(rows.filter((row) => row.held).map((row) => row.ord));
    return calls.map((_, ord) => ({ heldLease: heldAt.has(ord) }));
  };

  const settledAll =
    <In, Out>(run: (items: readonly In[]) => Promise<readonly Out[]>) =>
    async (items: readonly In[]) =>
      (await run(items)).map(fulfilled);
  const createAll: NotificationStore['createAll'] = batching
    ? (() => {
        const batched = createBatcher(settledAll(createCalls), batching);
        return (entries, lease) => batched([entries, lease]);
      })()
    : async (entries, lease) => (await createCalls([[entries, lease]]))[0] ?? [];
  // A row recorded twice in a batch would be updated once: such records go in rounds.
  const rowKey = ([held]: RecordCall) => `${held.event_id.toLowerCase()}/${held.channel}`;
  const record: NotificationStore['record'] = batching
    ? (() => {
        const batched = createBatcher<RecordCall, { heldLease: boolean }>(
          (calls) => inRounds(calls, rowKey, settledAll(recordCalls)),
          batching,
        );
        return (held, outcome) => batched([held, outcome]);
      })()
    : async (held, outcome) => (await recordCalls([[held, outcome]]))[0] ?? { heldLease: false };

  return {
    async standing(eventId, channels, now) {
      const rows = await db.query<{ status: string; lease_until: Date | null }>(
        'SELECT status, lease_until FROM notifications WHERE event_id = $1',
        [eventId],
      );
      const leased = rows.find((row) => row.status === 'sending' && row.lease_until && row.lease_until > now);
      if (leased?.lease_until) return { status: 'busy', leaseUntil: leased.lease_until };
      return rows.length === channels ? { status: 'settled' } : { status: 'open' };
    },

    async create(draft, lease, waitReason) {
      const [first] = await createAll([{ draft, waitReason }], lease);
      if (!first) throw new Error(`No answer for notification ${draft.event_id}/${draft.channel}`);
      return first;
    },

    createAll,

    async claimDue(channel, limit, lease) {
      const rows = await db.query<Omit<HeldNotification, 'token'>>(CLAIM_DUE_SQL, [
        channel,
        lease.now,
        limit,
        lease.token,
        lease.until,
      ]);
      return rows.map((row) => ({ ...row, created_at: new Date(row.created_at), token: lease.token }));
    },

    record,

    async scheduleRetry(held, error, next) {
      await db.query(
        `UPDATE notifications SET lease_token = NULL, lease_until = NULL, next_attempt_at = $4, error = $5
         WHERE event_id = $1 AND channel = $2 AND status = 'sending' AND lease_token = $3`,
        [held.event_id, held.channel, held.token, next, error],
      );
    },

    giveUpOverdue: (channel, createdBefore, now, retryFor) =>
      db.query(
        `UPDATE notifications
         SET status = 'failed', lease_token = NULL, lease_until = NULL, next_attempt_at = NULL,
             error = $4::text || coalesce(error, $5::text)
         WHERE status = 'sending' AND channel = $1 AND created_at <= $2 AND ${DUE_AT} <= $3
         RETURNING event_id, order_id, error`,
        [channel, createdBefore, now, givenUpPrefix(retryFor), NO_ERROR],
      ),
  };
}
