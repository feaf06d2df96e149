import type { Queryable } from '../ports/database.ts';
import type { Channel } from './transport.ts';

/** What a notifier knows before it creates a channel's row. */
export interface NotificationDraft {
  readonly event_id: string;
  readonly channel: Channel;
  readonly order_id: string;
  readonly user_id: string;
  readonly recipient: string | null;
  readonly subject: string;
  readonly text: string;
  /** Set when there is nothing to send (no address, channel not configured): the row is final. */
  readonly skipped?: string;
}

/** A row this notifier holds the lease of: it must send `text` to `recipient`, then settle it. */
export interface HeldNotification {
  readonly event_id: string;
  readonly channel: Channel;
  readonly order_id: string;
  readonly user_id: string;
  readonly recipient: string | null;
  readonly subject: string;
  readonly text: string;
  /** Claims of the row so far, this one included. */
  readonly attempts: number;
  /** When the row was created: the retry horizon counts from here. */
  readonly created_at: Date;
  readonly token: string;
}

export interface Lease {
  readonly token: string;
  readonly now: Date;
  readonly until: Date;
}

/** How the handler's first look at a channel's row went. */
export type FirstAttempt =
  /** The row is new and this notifier holds its lease: send it. */
  | { readonly status: 'held'; readonly notification: HeldNotification }
  /** The row is new and final: nothing to send (see the draft's `skipped`). */
  | { readonly status: 'skipped' }
  /** The row is new and waits for the retry loop (the channel is failing): nothing to do now. */
  | { readonly status: 'waiting' }
  /** The row existed and is final: sent, failed or skipped. */
  | { readonly status: 'settled' }
  /** The row existed and another notifier holds an unexpired lease on it: it may send or crash. */
  | { readonly status: 'busy'; readonly leaseUntil: Date }
  /** The row existed, unleased or with an expired lease: the retry loop's to take (see claimDue). */
  | { readonly status: 'queued' };

/*
 * One statement: the row is created held by this notifier, waiting for the retry loop, or final
 * (skipped), or left as it is when it exists. Only the first delivery of a message makes a
 * notification's first attempt; every later attempt is the retry loop's (claimDue).
 */
const CREATE_SQL = `
INSERT INTO notifications
  (event_id, channel, order_id, user_id, recipient, status, subject, text, error, attempts,
   lease_token, lease_until, next_attempt_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (event_id, channel) DO NOTHING
RETURNING attempts`;

/**
 * Creates a draft's row: held by `lease`, or waiting (`waitReason` set: the channel is failing, so
 * the retry loop makes the first attempt), or skipped (the draft says why). An existing row is
 * left alone and reported as it stands.
 */
export async function createNotification(
  db: Queryable,
  draft: NotificationDraft,
  lease: Lease,
  waitReason: string | undefined,
): Promise<FirstAttempt> {
  const mode = draft.skipped !== undefined ? 'skipped' : waitReason !== undefined ? 'waiting' : 'held';
  const held = mode === 'held';
  const [row] = await db.query<{ attempts: number }>(CREATE_SQL, [
    draft.event_id,
    draft.channel,
    draft.order_id,
    draft.user_id,
    draft.recipient,
    mode === 'skipped' ? 'skipped' : 'sending',
    draft.subject,
    draft.text,
    draft.skipped ?? waitReason ?? null,
    held ? 1 : 0,
    held ? lease.token : null,
    held ? lease.until : null,
    mode === 'waiting' ? lease.now : null,
    lease.now,
  ]);
  if (!row) return standing(db, draft, lease.now);
  if (mode !== 'held') return { status: mode };
  const { skipped: _skipped, ...fields } = draft;
  return {
    status: 'held',
    notification: { ...fields, attempts: row.attempts, created_at: lease.now, token: lease.token },
  };
}

async function standing(db: Queryable, draft: NotificationDraft, now: Date): Promise<FirstAttempt> {
  const [row] = await db.query<{ status: string; lease_until: Date | null }>(
    'SELECT status, lease_until FROM notifications WHERE event_id = $1 AND channel = $2',
    [draft.event_id, draft.channel],
  );
  if (row?.status !== 'sending') return { status: 'settled' };
  if (row.lease_until && row.lease_until > now) return { status: 'busy', leaseUntil: row.lease_until };
  return { status: 'queued' };
}

/** Where a message's notifications stand, across all channels, before anything is created. */
export type MessageStanding =
  /** Every channel has its row and none is held: final, or in the retry loop's hands. */
  | { readonly status: 'settled' }
  /** Another notifier holds an unexpired lease on a channel: it is at work on this message. */
  | { readonly status: 'busy'; readonly leaseUntil: Date }
  /** Some channel has no row yet. */
  | { readonly status: 'open' };

/**
 * One cheap read that settles most redeliveries (duplicates, deliveries put off while another
 * notifier sends) without loading the order or the user's channels.
 */
export async function messageStanding(
  db: Queryable,
  eventId: string,
  channels: number,
  now: Date,
): Promise<MessageStanding> {
  const rows = await db.query<{ status: string; lease_until: Date | null }>(
    'SELECT status, lease_until FROM notifications WHERE event_id = $1',
    [eventId],
  );
  const leased = rows.find((row) => row.status === 'sending' && row.lease_until && row.lease_until > now);
  if (leased?.lease_until) return { status: 'busy', leaseUntil: leased.lease_until };
  return rows.length === channels ? { status: 'settled' } : { status: 'open' };
}

/** When a row still 'sending' is due (see migrations/008_notification_retries.sql). */
const DUE_AT = 'coalesce(lease_until, next_attempt_at, created_at)';

/*
 * SKIP LOCKED: notifiers of several processes claim side by side without waiting on each other;
 * a row another one is claiming right now is left to it.
 */
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

/**
 * Claims up to `limit` due rows of a channel, oldest first: rows waiting for their next attempt,
 * and rows whose holder's lease expired (it crashed, or hangs).
 */
export async function claimDue(
  db: Queryable,
  channel: Channel,
  limit: number,
  lease: Lease,
): Promise<HeldNotification[]> {
  const rows = await db.query<Omit<HeldNotification, 'token'>>(CLAIM_DUE_SQL, [
    channel,
    lease.now,
    limit,
    lease.token,
    lease.until,
  ]);
  return rows.map((row) => ({ ...row, created_at: new Date(row.created_at), token: lease.token }));
}

/** How a held notification ended. */
export type Outcome =
  | { readonly status: 'sent'; readonly at: Date }
  | { readonly status: 'failed' | 'skipped'; readonly reason: string };

/**
 * Records a held row's outcome and lets go of the lease, in one statement. A send is recorded even
 * if the lease expired meanwhile (what happened did happen); a failure only while the lease is
 * still held, since another notifier may be sending it now. Answers whether this claim still held
 * the lease: losing it means another notifier may have sent it too.
 */
export async function recordOutcome(
  db: Queryable,
  held: HeldNotification,
  outcome: Outcome,
): Promise<{ readonly heldLease: boolean }> {
  const [row] = await db.query<{ held: boolean }>(
    `UPDATE notifications AS n
     SET status = $3::text, sent_at = $4, error = $5, lease_token = NULL, lease_until = NULL, next_attempt_at = NULL
     FROM (SELECT lease_token FROM notifications WHERE event_id = $1 AND channel = $2 FOR UPDATE) AS before
     WHERE n.event_id = $1 AND n.channel = $2 AND n.status = 'sending' AND ($3::text = 'sent' OR n.lease_token = $6::uuid)
     RETURNING coalesce(before.lease_token = $6::uuid, false) AS held`,
    [
      held.event_id,
      held.channel,
      outcome.status,
      outcome.status === 'sent' ? outcome.at : null,
      outcome.status === 'sent' ? null : outcome.reason,
      held.token,
    ],
  );
  return { heldLease: row?.held === true };
}

/**
 * Gives a held row back to wait for its next attempt at `next`, keeping the error that made it
 * wait. A no-op once the lease was lost: the notifier that took the row over decides.
 */
export async function scheduleRetry(
  db: Queryable,
  held: HeldNotification,
  error: string,
  next: Date,
): Promise<void> {
  await db.query(
    `UPDATE notifications SET lease_token = NULL, lease_until = NULL, next_attempt_at = $4, error = $5
     WHERE event_id = $1 AND channel = $2 AND status = 'sending' AND lease_token = $3`,
    [held.event_id, held.channel, held.token, next, error],
  );
}

const NO_ERROR = 'none (its notifier stopped while sending)';

function givenUpPrefix(retryFor: string): string {
  return `not delivered within ${retryFor}; last error: `;
}

/** What a notification given up at the retry horizon is recorded with. */
export function givenUpReason(retryFor: string, lastError: string | null): string {
  return givenUpPrefix(retryFor) + (lastError ?? NO_ERROR);
}

/**
 * Records as failed the rows of a channel still unsent `retryFor` after they were created (those
 * no notifier holds a live lease on), each with its last error.
 */
export async function giveUpOverdue(
  db: Queryable,
  channel: Channel,
  createdBefore: Date,
  now: Date,
  retryFor: string,
): Promise<{ event_id: string; order_id: string; error: string }[]> {
  return db.query(
    `UPDATE notifications
     SET status = 'failed', lease_token = NULL, lease_until = NULL, next_attempt_at = NULL,
         error = $4::text || coalesce(error, $5::text)
     WHERE status = 'sending' AND channel = $1 AND created_at <= $2 AND ${DUE_AT} <= $3
     RETURNING event_id, order_id, error`,
    [channel, createdBefore, now, givenUpPrefix(retryFor), NO_ERROR],
  );
}
