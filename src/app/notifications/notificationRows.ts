import type { Queryable } from '../../infra/db/port.ts';
import type { Channel } from './transport.ts';

/** What a notifier knows before it claims a channel's row. */
export interface NotificationDraft {
  readonly event_id: string;
  readonly channel: Channel;
  readonly order_id: string;
  readonly user_id: string;
  readonly recipient: string | null;
  readonly text: string;
  /** Set when there is nothing to send (no address, channel not configured): the row is final. */
  readonly skipped?: string;
}

/** A claim: either this notifier holds the row, or where the row stands. */
export type ClaimResult =
  /** This notifier holds the lease and must send to `recipient` the stored `text`. */
  | {
      readonly status: 'claimed';
      readonly recipient: string | null;
      readonly text: string;
      readonly attempts: number;
    }
  /** The row is final (sent, failed or skipped): nothing to send. `now`: this claim made it so. */
  | { readonly status: 'settled'; readonly outcome: 'sent' | 'failed' | 'skipped'; readonly now: boolean }
  /** Another notifier holds an unexpired lease: it may still send or crash, so come back later. */
  | { readonly status: 'busy'; readonly leaseUntil: Date | null };

/*
 * One statement, so one short transaction: inserts the row, or takes over one whose lease has
 * expired or was released. A row that is final or leased by someone else is left alone, and
 * RETURNING yields nothing. The recipient and text of an existing row win over the draft, so a
 * resend says what the first attempt would have said, to whom it would have said it.
 */
const CLAIM_SQL = `
INSERT INTO notifications AS n
  (event_id, channel, order_id, user_id, recipient, status, text, error, attempts, lease_token, lease_until)
VALUES ($1, $2, $3, $4, $5, $6::text, $7, $8,
  CASE WHEN $6::text = 'sending' THEN 1 ELSE 0 END,
  CASE WHEN $6::text = 'sending' THEN $9::uuid END,
  CASE WHEN $6::text = 'sending' THEN $10::timestamptz END)
ON CONFLICT (event_id, channel) DO UPDATE
  SET attempts = n.attempts + 1, lease_token = $9::uuid, lease_until = $10::timestamptz
  WHERE n.status = 'sending' AND (n.lease_until IS NULL OR n.lease_until <= $11)
RETURNING n.status, n.recipient, n.text, n.attempts`;

interface ClaimRow {
  readonly status: 'sending' | 'skipped';
  readonly recipient: string | null;
  readonly text: string;
  readonly attempts: number;
}

export interface Lease {
  readonly token: string;
  readonly now: Date;
  readonly until: Date;
}

/** Claims the row of a draft (see CLAIM_SQL), or tells why it cannot. */
export async function claimNotification(
  db: Queryable,
  draft: NotificationDraft,
  lease: Lease,
): Promise<ClaimResult> {
  const skipped = draft.skipped !== undefined;
  const [row] = await db.query<ClaimRow>(CLAIM_SQL, [
    draft.event_id,
    draft.channel,
    draft.order_id,
    draft.user_id,
    draft.recipient,
    skipped ? 'skipped' : 'sending',
    draft.text,
    draft.skipped ?? null,
    lease.token,
    lease.until,
    lease.now,
  ]);
  if (row?.status === 'sending')
    return { status: 'claimed', recipient: row.recipient, text: row.text, attempts: row.attempts };
  if (row) return { status: 'settled', outcome: 'skipped', now: true };
  return standing(db, draft);
}

async function standing(db: Queryable, draft: NotificationDraft): Promise<ClaimResult> {
  const [row] = await db.query<{ status: string; lease_until: Date | null }>(
    'SELECT status, lease_until FROM notifications WHERE event_id = $1 AND channel = $2',
    [draft.event_id, draft.channel],
  );
  if (row?.status === 'sent' || row?.status === 'failed' || row?.status === 'skipped')
    return { status: 'settled', outcome: row.status, now: false };
  // Still sending (or, if it vanished, something odd): never acknowledge blindly.
  return { status: 'busy', leaseUntil: row?.lease_until ?? null };
}

/** Where a message's notifications stand, across all channels, before any claim. */
export type MessageStanding =
  /** Every channel's row is final: nothing left to do but record the message as processed. */
  | { readonly status: 'settled' }
  /** Another notifier holds an unexpired lease on a channel: it is at work on this message. */
  | { readonly status: 'busy'; readonly leaseUntil: Date }
  /** Something is left to claim. */
  | { readonly status: 'open' };

/**
 * One cheap read that settles most redeliveries (duplicates, deliveries put off while another
 * notifier sends) without loading the order or the user's channels. The claims stay the
 * authority: this only decides whether they are worth making.
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
  const final = rows.filter((row) => row.status !== 'sending');
  return final.length === channels ? { status: 'settled' } : { status: 'open' };
}

/** How a claimed notification ended. */
export type Outcome =
  | { readonly status: 'sent'; readonly at: Date }
  | { readonly status: 'failed' | 'skipped'; readonly reason: string };

/**
 * Records a claimed row's outcome and lets go of the lease. Records it even if the lease
 * expired meanwhile (what happened did happen); answers whether this claim still held the lease,
 * since losing it means another notifier may have sent it too.
 */
export async function recordOutcome(
  tx: Queryable,
  draft: NotificationDraft,
  token: string,
  outcome: Outcome,
): Promise<{ readonly heldLease: boolean }> {
  const [row] = await tx.query<{ lease_token: string | null; status: string }>(
    'SELECT lease_token, status FROM notifications WHERE event_id = $1 AND channel = $2 FOR UPDATE',
    [draft.event_id, draft.channel],
  );
  await tx.query(
    `UPDATE notifications
     SET status = $3, sent_at = $4, error = $5, lease_token = NULL, lease_until = NULL
     WHERE event_id = $1 AND channel = $2 AND status = 'sending'`,
    [
      draft.event_id,
      draft.channel,
      outcome.status,
      outcome.status === 'sent' ? outcome.at : null,
      outcome.status === 'sent' ? null : outcome.reason,
    ],
  );
  return { heldLease: row?.status === 'sending' && row.lease_token === token };
}

/** Gives a claim back after a transient failure, so the next delivery can claim it at once. */
export async function releaseClaim(
  db: Queryable,
  draft: NotificationDraft,
  token: string,
  error: string,
): Promise<void> {
  await db.query(
    `UPDATE notifications SET lease_token = NULL, lease_until = NULL, error = $4
     WHERE event_id = $1 AND channel = $2 AND lease_token = $3`,
    [draft.event_id, draft.channel, token, error],
  );
}
