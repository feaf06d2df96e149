import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Database } from '../../infra/db/port.ts';
import { createEventStore } from '../../infra/eventStore.ts';
import type { EventStore } from '../../infra/eventStore.ts';
import type { Logger } from '../../infra/logger.ts';
import { markProcessed } from '../inbox.ts';
import { PoisonMessageError, RetryLaterError } from '../messages.ts';
import type { Consumer, EventMessage } from '../messages.ts';
import { readAddresses } from './channels.ts';
import { durationHistogram } from './metrics.ts';
import type { DurationHistogram } from './metrics.ts';
import { claimNotification, messageStanding, recordOutcome, releaseClaim } from './notificationRows.ts';
import type { NotificationDraft, Outcome } from './notificationRows.ts';
import { notificationText } from './texts.ts';
import type { NotificationText, TerminalEvent } from './texts.ts';
import { CHANNELS, PermanentDeliveryError } from './transport.ts';
import type { Channel, NotificationTransport } from './transport.ts';

export const NOTIFIER_CONSUMER = 'notifier';

/** Two minutes: well beyond the slowest send a transport allows (its timeouts and bounded retries). */
export const DEFAULT_LEASE_MS = 120_000;

export interface NotifierDeps {
  readonly db: Database;
  /** Where the order's OrderAccepted (and so its user) is read; the event store on `db` by default. */
  readonly store?: EventStore;
  readonly logger: Logger;
  /** Telegram and email; a channel without a transport is logged and recorded as skipped. */
  readonly telegram?: NotificationTransport | undefined;
  readonly mail?: NotificationTransport | undefined;
  readonly now?: () => Date;
  /**
   * How long a claim keeps other notifiers off a notification. Longer than any send can take,
   * or a slow send could be repeated by another notifier while it is still under way.
   */
  readonly leaseMs?: number;
  /**
   * Failpoint for tests: runs after a send succeeded and before it is recorded. Throwing leaves
   * the claim in place, as a crash at that moment would.
   */
  readonly afterSend?: (draft: NotificationDraft) => Promise<void> | void;
}

/** What a notifier has done since it was created (tests read it; an exporter could). */
export interface NotifierMetrics {
  readonly sent: number;
  readonly failed: number;
  readonly skipped: number;
  /** Deliveries that found a notification claimed by another notifier and were put off. */
  readonly busy: number;
  /** Claims of a notification that had been claimed before (after a transient error or a crash). */
  readonly reclaimed: number;
  /** Sends recorded after this notifier's lease had expired: another may have sent them too. */
  readonly leaseLost: number;
  /**
   * The duplicate window, at most: from the start of a successful send to the commit of its
   * record. A crash inside it, once the provider has taken the message, leaves a notification
   * sent but not recorded, sent again when the lease expires; nowhere else can a duplicate arise.
   */
  readonly duplicateWindow: DurationHistogram;
  /** The duplicate window, at least: from the provider's answer to the commit of the record. */
  readonly recordLag: DurationHistogram;
}

export interface Notifier extends Consumer {
  metrics(): NotifierMetrics;
}

interface Delivery {
  readonly message: EventMessage;
  readonly draft: NotificationDraft;
  /** The last channel of the message: its record carries the processed_events row. */
  readonly last: boolean;
}

function terminalEvent(message: EventMessage): TerminalEvent {
  if (message.event_type !== 'OrderCompleted' && message.event_type !== 'OrderFailed')
    throw new PoisonMessageError(`The notifier does not handle ${message.event_type} (${message.event_id})`);
  return { type: message.event_type, data: message.event_data } as TerminalEvent;
}

async function userOf(store: EventStore, message: EventMessage): Promise<string> {
  const accepted = (await store.load(message.aggregate_id)).find((e) => e.event_type === 'OrderAccepted');
  const userId = accepted?.event_data.user_id;
  if (typeof userId !== 'string')
    throw new PoisonMessageError(
      `${message.event_type} ${message.event_id} names order ${message.aggregate_id}, which has no OrderAccepted`,
    );
  return userId;
}

/** Why a channel has nothing to send, or undefined when it has. */
function skipReason(channel: Channel, address: string | undefined, transport: unknown): string | undefined {
  const noun = channel === 'telegram' ? 'Telegram chat id' : 'email address';
  if (address === undefined) return `the user has no ${noun}`;
  if (transport === undefined)
    return channel === 'telegram'
      ? 'Telegram is not configured (TELEGRAM_BOT_TOKEN)'
      : 'email is not configured (SMTP_URL)';
  return undefined;
}

/**
 * Role `notifier`: tells the user how their order ended, once per channel (Telegram, email).
 *
 * Exactly once per (terminal event, channel), across any number of notifiers and deliveries:
 * 1. claim the notification's row with a lease, in one short statement (never a transaction held
 *    across a network call: a slow provider would hold locks and connections for its duration);
 * 2. send, outside any transaction;
 * 3. record the outcome, and for the last channel the processed_events row, in one transaction.
 * A delivery that finds the row final only records the message as processed; one that finds it
 * leased by another notifier is put off (RetryLaterError), never acknowledged, since the holder
 * may crash. A crash between 2 and 3 sends again once the lease expires: that window is the only
 * source of duplicates, and its length is measured (`metrics().duplicateWindow`, and logged).
 * A permanent refusal (chat not found, bot blocked) is recorded as failed and not retried; a
 * transient one releases the claim and fails the delivery, so the bus retries it.
 */
export function createNotifier(deps: NotifierDeps): Notifier {
  const { db, logger } = deps;
  const store = deps.store ?? createEventStore(db);
  const now = deps.now ?? (() => new Date());
  const leaseMs = deps.leaseMs ?? DEFAULT_LEASE_MS;
  const transports: Record<Channel, NotificationTransport | undefined> = {
    telegram: deps.telegram,
    email: deps.mail,
  };
  const counts = { sent: 0, failed: 0, skipped: 0, busy: 0, reclaimed: 0, leaseLost: 0 };
  const window = durationHistogram();
  const lag = durationHistogram();

  async function drafts(message: EventMessage, text: NotificationText): Promise<NotificationDraft[]> {
    const userId = await userOf(store, message);
    const addresses = await readAddresses(db, userId);
    return CHANNELS.map((channel) => {
      const recipient = addresses.get(channel);
      const skipped = skipReason(channel, recipient, transports[channel]);
      return {
        event_id: message.event_id,
        channel,
        order_id: message.aggregate_id,
        user_id: userId,
        recipient: recipient ?? null,
        text: text.text,
        ...(skipped === undefined ? {} : { skipped }),
      };
    });
  }

  async function record(delivery: Delivery, token: string, outcome: Outcome) {
    return db.transaction(async (tx) => {
      const result = await recordOutcome(tx, delivery.draft, token, outcome);
      if (delivery.last) await markProcessed(tx, NOTIFIER_CONSUMER, delivery.message);
      return result;
    });
  }

  /** Sends a claimed notification and records how it went; rethrows what the bus should retry. */
  async function send(delivery: Delivery, token: string, recipient: string | null, text: NotificationText) {
    const { draft } = delivery;
    const transport = transports[draft.channel];
    const reason = skipReason(draft.channel, recipient ?? undefined, transport);
    if (reason !== undefined || recipient === null || transport === undefined) {
      // Reclaimed after the transport was switched off: nothing can send it now.
      await record(delivery, token, { status: 'skipped', reason: reason ?? 'nothing to send' });
      logSkipped(draft, reason ?? 'nothing to send');
      return;
    }
    const started = performance.now();
    try {
      await transport.send(recipient, text);
    } catch (error) {
      await settleFailure(delivery, token, error);
      return;
    }
    const sentMs = performance.now() - started;
    await deps.afterSend?.(draft);
    const { heldLease } = await record(delivery, token, { status: 'sent', at: now() });
    const windowMs = performance.now() - started;
    window.observe(windowMs);
    lag.observe(windowMs - sentMs);
    counts.sent += 1;
    if (!heldLease) counts.leaseLost += 1;
    logger[heldLease ? 'info' : 'warn'](
      {
        ...logContext(draft),
        send_ms: round(sentMs),
        record_ms: round(windowMs - sentMs),
        held_lease: heldLease,
      },
      heldLease
        ? 'notification sent'
        : 'notification sent after its lease expired: it may have been sent twice',
    );
  }

  async function settleFailure(delivery: Delivery, token: string, error: unknown) {
    const reason = error instanceof Error ? error.message : String(error);
    if (error instanceof PermanentDeliveryError) {
      await record(delivery, token, { status: 'failed', reason });
      counts.failed += 1;
      logger.warn({ ...logContext(delivery.draft), reason }, 'notification refused for good');
      return;
    }
    await releaseClaim(db, delivery.draft, token, reason);
    throw error;
  }

  function putOff(what: string, leaseUntil: Date | null): never {
    counts.busy += 1;
    const until = leaseUntil ? ` (lease until ${leaseUntil.toISOString()})` : '';
    throw new RetryLaterError(`Notification ${what} is being sent by another notifier${until}`);
  }

  async function deliver(delivery: Delivery, text: NotificationText): Promise<void> {
    const { draft } = delivery;
    const at = now();
    const lease = { token: randomUUID(), now: at, until: new Date(at.getTime() + leaseMs) };
    const claim = await claimNotification(db, draft, lease);
    if (claim.status === 'busy') putOff(`${draft.event_id}/${draft.channel}`, claim.leaseUntil);
    if (claim.status === 'settled') {
      if (claim.now) logSkipped(draft, draft.skipped ?? 'nothing to send');
      if (delivery.last) await markProcessed(db, NOTIFIER_CONSUMER, delivery.message);
      return;
    }
    if (claim.attempts > 1) counts.reclaimed += 1;
    await send(delivery, lease.token, claim.recipient, { ...text, text: claim.text });
  }

  function logSkipped(draft: NotificationDraft, reason: string) {
    counts.skipped += 1;
    logger.info({ ...logContext(draft), reason, text: draft.text }, 'notification not sent');
  }

  return {
    name: NOTIFIER_CONSUMER,
    eventTypes: ['OrderCompleted', 'OrderFailed'],
    async handle(message) {
      const text = notificationText(terminalEvent(message));
      const standing = await messageStanding(db, message.event_id, CHANNELS.length, now());
      if (standing.status === 'busy') putOff(message.event_id, standing.leaseUntil);
      if (standing.status === 'settled') return markProcessed(db, NOTIFIER_CONSUMER, message);
      const all = await drafts(message, text);
      for (const [i, draft] of all.entries()) {
        await deliver({ message, draft, last: i === all.length - 1 }, text);
      }
    },
    metrics: () => ({ ...counts, duplicateWindow: window.read(), recordLag: lag.read() }),
  };
}

function logContext(draft: NotificationDraft) {
  return {
    event_id: draft.event_id,
    order_id: draft.order_id,
    channel: draft.channel,
    user_id: draft.user_id,
  };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
