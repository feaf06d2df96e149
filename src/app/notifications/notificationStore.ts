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

/** Where a message's notifications stand, across all channels, before anything is created. */
export type MessageStanding =
  /** Every channel has its row and none is held: final, or in the retry loop's hands. */
  | { readonly status: 'settled' }
  /** Another notifier holds an unexpired lease on a channel: it is at work on this message. */
  | { readonly status: 'busy'; readonly leaseUntil: Date }
  /** Some channel has no row yet. */
  | { readonly status: 'open' };

/** How a held notification ended. */
export type Outcome =
  | { readonly status: 'sent'; readonly at: Date }
  | { readonly status: 'failed' | 'skipped'; readonly reason: string };

/** The last error of a notification that never failed a send (its notifier stopped while sending). */
export const NO_ERROR = 'none (its notifier stopped while sending)';

/** What the reason of a notification given up at the retry horizon starts with. */
export function givenUpPrefix(retryFor: string): string {
  return `not delivered within ${retryFor}; last error: `;
}

/** What a notification given up at the retry horizon is recorded with. */
export function givenUpReason(retryFor: string, lastError: string | null): string {
  return givenUpPrefix(retryFor) + (lastError ?? NO_ERROR);
}

/**
 * Where notifications are kept, one row per (terminal event, channel) (table `notifications`):
 * created with the lease of the notifier that sends it, or waiting for the retry loop, or final.
 * Every method is one statement, never a transaction held across a send.
 * src/infra/notify/notificationStore.ts implements it.
 */
export interface NotificationStore {
  /**
   * Where a message's notifications stand, across all `channels` of it: one cheap read that
   * settles most redeliveries (duplicates, deliveries put off while another notifier sends)
   * without loading the order or the user's channels.
   */
  standing(eventId: string, channels: number, now: Date): Promise<MessageStanding>;
  /**
   * Creates a draft's row: held by `lease`, or waiting (`waitReason` set: the channel is failing,
   * so the retry loop makes the first attempt), or skipped (the draft says why). An existing row
   * is left alone and reported as it stands. Only the first delivery of a message makes a
   * notification's first attempt; every later attempt is the retry loop's (claimDue).
   */
  create(draft: NotificationDraft, lease: Lease, waitReason: string | undefined): Promise<FirstAttempt>;
  /** `create` for several drafts (a message's channels) in one statement; answers in their order. */
  createAll(
    drafts: readonly { readonly draft: NotificationDraft; readonly waitReason: string | undefined }[],
    lease: Lease,
  ): Promise<FirstAttempt[]>;
  /**
   * Claims up to `limit` due rows of a channel, oldest first: rows waiting for their next attempt,
   * and rows whose holder's lease expired (it crashed, or hangs). Notifiers of several processes
   * claim side by side (SKIP LOCKED): a row another one is claiming right now is left to it.
   */
  claimDue(channel: Channel, limit: number, lease: Lease): Promise<HeldNotification[]>;
  /**
   * Records a held row's outcome and lets go of the lease. A send is recorded even if the lease
   * expired meanwhile (what happened did happen); a failure only while the lease is still held,
   * since another notifier may be sending it now. Answers whether this claim still held the
   * lease: losing it means another notifier may have sent it too.
   */
  record(held: HeldNotification, outcome: Outcome): Promise<{ readonly heldLease: boolean }>;
  /**
   * Gives a held row back to wait for its next attempt at `next`, keeping the error that made it
   * wait. A no-op once the lease was lost: the notifier that took the row over decides.
   */
  scheduleRetry(held: HeldNotification, error: string, next: Date): Promise<void>;
  /**
   * Records as failed the rows of a channel still unsent `retryFor` after they were created
   * (before `createdBefore`; those no notifier holds a live lease on at `now`), each with
   * {@link givenUpReason} and its last error.
   */
  giveUpOverdue(channel: Channel, createdBefore: Date, now: Date, retryFor: string): Promise<GivenUp[]>;
}

/** A notification recorded failed at the retry horizon. */
export interface GivenUp {
  readonly event_id: string;
  readonly order_id: string;
  /** The reason recorded: {@link givenUpReason} with the last error. */
  readonly error: string;
}
