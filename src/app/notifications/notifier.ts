import { randomUUID } from 'node:crypto';
import { domainEvent } from '../envelopes.ts';
import type { Inbox } from '../inbox.ts';
import type { Logger } from '../ports/logger.ts';
import type { Metrics } from '../ports/metrics.ts';
import type { ChannelAlerts } from './channelHealth.ts';
import { PoisonMessageError, RetryLaterError } from '../messages.ts';
import type { Consumer, EventMessage } from '../messages.ts';
import { addressesOf } from './channels.ts';
import type { UserChannelStore } from './channels.ts';
import type {
  FirstAttempt,
  HeldNotification,
  Lease,
  NotificationDraft,
  NotificationStore,
} from './notificationStore.ts';
import { createSender, logContext, skipReason } from './sender.ts';
import type { NotifierMetrics } from './sender.ts';
import { notificationText } from './texts.ts';
import type { NotificationText, TerminalEvent } from './texts.ts';
import { CHANNELS } from './transport.ts';
import type { Channel, NotificationTransport } from './transport.ts';

export type { NotifierMetrics } from './sender.ts';

export const NOTIFIER_CONSUMER = 'notifier';

/** Two minutes: well beyond the slowest send a transport allows (its timeouts and bounded retries). */
export const DEFAULT_LEASE_MS = 120_000;

/** A day (NOTIFY_RETRY_FOR_MS): a provider's outage or a misconfiguration is fixed well within it. */
export const DEFAULT_RETRY_FOR_MS = 86_400_000;

export interface NotifierDeps {
  /** The notifications' rows: who sends what, and how each ended. */
  readonly notifications: NotificationStore;
  /** Users' channels: where to send (and whose order it is). */
  readonly channels: UserChannelStore;
  /** Where handled messages are recorded. */
  readonly inbox: Inbox;
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
   * How long a notification whose provider fails is retried, from its first attempt, before it is
   * recorded failed with the last error (NOTIFY_RETRY_FOR_MS; default a day).
   */
  readonly retryForMs?: number;
  /** Wait before a notification's next attempt: doubles with each attempt (defaults 1 s to 1 min). */
  readonly retryMinDelayMs?: number;
  readonly retryMaxDelayMs?: number;
  /** Pause between the retry loop's passes over a channel (default 1 s). */
  readonly retryIntervalMs?: number;
  /** Notifications of a working channel one pass sends at most (default 16). */
  readonly retryBatch?: number;
  /**
   * Failpoint for tests: runs after a send succeeded and before it is recorded. Throwing leaves
   * the claim in place, as a crash at that moment would.
   */
  readonly afterSend?: (notification: HeldNotification) => Promise<void> | void;
  /** Counts notifications by channel and outcome (none when unset). */
  readonly metrics?: Metrics | undefined;
  /** Raises and clears the alert of a channel that refuses this service's configuration. */
  readonly channelAlerts?: ChannelAlerts | undefined;
}

export interface Notifier extends Consumer {
  metrics(): NotifierMetrics;
  /**
   * One pass of the retry loop over every channel, as start() runs them: records as failed what
   * is past the retry horizon, then claims and sends what is due. Resolves with how many
   * notifications it tried.
   */
  retryDue(): Promise<number>;
  /** Starts the retry loop: a pass per channel every `retryIntervalMs`, each channel on its own. */
  start(): void;
  /** Stops the retry loop; sends under way finish and are recorded. */
  stop(): Promise<void>;
}

function terminalEvent(message: EventMessage): TerminalEvent {
  if (message.event_type !== 'OrderCompleted' && message.event_type !== 'OrderFailed')
    throw new PoisonMessageError(`The notifier does not handle ${message.event_type} (${message.event_id})`);
  return domainEvent(message);
}

/**
 * Role `notifier`: tells the user how their order ended, once per channel (Telegram, email), each
 * channel on its own: one that fails or hangs neither holds up nor loses another.
 *
 * Exactly once per (terminal event, channel), across any number of notifiers and deliveries:
 * 1. the first delivery of a message creates each channel's row, holding it with a lease, in one
 *    short statement (never a transaction held across a network call: a slow provider would hold
 *    locks and connections for its duration);
 * 2. sends, outside any transaction, every channel at the same time;
 * 3. records each channel's outcome in one statement, and once every channel's row is final or
 *    waiting for a retry, the message as processed.
 * A transient failure (provider down, rate limit, timeout, a misconfigured bot) never fails the
 * message: the row waits with its error and the retry loop (start()) tries it again with a growing
 * backoff, for `retryForMs`, then records it failed with the last error. The loop also takes over
 * rows whose holder's lease expired (it crashed or hangs). A delivery that finds a row leased by
 * another notifier is put off (RetryLaterError), never acknowledged, since the holder may crash.
 * A crash between 2 and 3 sends again once the lease expires: that window is the only source of
 * duplicates, and its length is measured (`metrics().duplicateWindow`, and logged). A permanent
 * refusal (chat not found, bot blocked) is recorded as failed and not retried.
 */
export function createNotifier(deps: NotifierDeps): Notifier {
  const { notifications, inbox, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const leaseMs = deps.leaseMs ?? DEFAULT_LEASE_MS;
  const retryForMs = deps.retryForMs ?? DEFAULT_RETRY_FOR_MS;
  const intervalMs = deps.retryIntervalMs ?? 1_000;
  const batch = deps.retryBatch ?? 16;
  const transports: Record<Channel, NotificationTransport | undefined> = {
    telegram: deps.telegram,
    email: deps.mail,
  };
  const sender = createSender({
    notifications,
    logger,
    transports,
    now,
    retryForMs,
    retryMinDelayMs: deps.retryMinDelayMs ?? 1_000,
    retryMaxDelayMs: deps.retryMaxDelayMs ?? 60_000,
    afterSend: deps.afterSend,
    metrics: deps.metrics,
    channelAlerts: deps.channelAlerts,
  });
  const { attempt, health, counts } = sender;

  function newLease(): Lease {
    const at = now();
    return { token: randomUUID(), now: at, until: new Date(at.getTime() + leaseMs) };
  }

  /** Whose order it is and where they are reached: one read, started with the standing's. */
  async function recipients(message: EventMessage) {
    const found = await deps.channels.readForOrder(message.aggregate_id);
    if (!found)
      throw new PoisonMessageError(
        `${message.event_type} ${message.event_id} names order ${message.aggregate_id}, which has no OrderAccepted`,
      );
    return { userId: found.userId, addresses: addressesOf(found.channels) };
  }

  function drafts(
    message: EventMessage,
    text: NotificationText,
    { userId, addresses }: { userId: string; addresses: Map<Channel, string> },
  ): NotificationDraft[] {
    return CHANNELS.map((channel) => {
      const recipient = addresses.get(channel);
      const skipped = skipReason(channel, recipient, transports[channel]);
      return {
        event_id: message.event_id,
        channel,
        order_id: message.aggregate_id,
        user_id: userId,
        recipient: recipient ?? null,
        subject: text.subject,
        text: text.text,
        ...(skipped === undefined ? {} : { skipped }),
      };
    });
  }

  function putOff(what: string, leaseUntil: Date): RetryLaterError {
    return new RetryLaterError(
      `Notification ${what} is being sent by another notifier (lease until ${leaseUntil.toISOString()})`,
    );
  }

  /** What follows a channel's first attempt, once its row is created (or found). */
  async function afterCreate(draft: NotificationDraft, first: FirstAttempt, failing: string | undefined) {
    switch (first.status) {
      case 'held':
        return attempt(first.notification);
      case 'skipped':
        return sender.logSkipped(draft, draft.skipped ?? 'nothing to send');
      case 'waiting':
        counts.retrying += 1;
        deps.metrics?.notification(draft.channel, 'retrying');
        logger.debug({ ...logContext(draft), reason: failing }, 'notification left to the retry loop');
        return;
      case 'busy':
        throw putOff(`${draft.event_id}/${draft.channel}`, first.leaseUntil);
      case 'settled':
      case 'queued':
        return;
    }
  }

  /**
   * The first attempt of every channel's notification, which only the first delivery of its
   * message makes: the rows in one statement, then each channel on its own, all at once. The
   * first failure (e.g. a row another notifier holds) fails the message.
   */
  async function attemptAll(drafts: readonly NotificationDraft[]): Promise<void> {
    // A failing channel: leave the notification to the retry loop rather than wait on the provider.
    const entries = drafts.map((draft) => ({
      draft,
      waitReason: draft.skipped === undefined ? health.failing(draft.channel) : undefined,
    }));
    const firsts = await notifications.createAll(entries, newLease());
    const results = await Promise.allSettled(
      entries.map(({ draft, waitReason }, i) =>
        afterCreate(draft, firsts[i] ?? { status: 'settled' }, waitReason),
      ),
    );
    const failure = results.find((result) => result.status === 'rejected');
    if (failure) {
      if (failure.reason instanceof RetryLaterError) counts.busy += 1;
      throw failure.reason;
    }
  }

  /** One pass over a channel: gives up what is past the horizon, then sends what is due. */
  async function retryChannel(channel: Channel): Promise<number> {
    const lease = newLease();
    const horizon = new Date(lease.now.getTime() - retryForMs);
    for (const row of await notifications.giveUpOverdue(channel, horizon, lease.now, sender.retryFor))
      sender.logGivenUp({ ...row, channel }, row.error);
    // A failing channel gets one notification a pass: it probes, the others wait for its answer.
    const due = await notifications.claimDue(
      channel,
      health.failing(channel) === undefined ? batch : 1,
      lease,
    );
    counts.reclaimed += due.filter((held) => held.attempts > 1).length;
    const results = await Promise.allSettled(due.map((held) => attempt(held)));
    for (const result of results) {
      if (result.status === 'rejected')
        logger.error(
          { err: result.reason as unknown, channel },
          'a notification could not be settled; it is tried again when its lease expires',
        );
    }
    return due.length;
  }

  const timers = new Map<Channel, ReturnType<typeof setTimeout>>();
  const passes = new Set<Promise<unknown>>();
  let running = false;

  function schedule(channel: Channel, delayMs: number): void {
    timers.set(
      channel,
      setTimeout(() => {
        const pass = retryChannel(channel)
          .catch((error: unknown) =>
            logger.warn({ err: error, channel }, 'notification retry pass failed; trying again'),
          )
          .finally(() => {
            passes.delete(pass);
            if (running) schedule(channel, intervalMs);
          });
        passes.add(pass);
      }, delayMs),
    );
  }

  return {
    name: NOTIFIER_CONSUMER,
    eventTypes: ['OrderCompleted', 'OrderFailed'],
    async handle(message, delivery) {
      const text = notificationText(terminalEvent(message));
      // A first delivery goes straight to creating the rows: a row that exists all the same (a
      // copy of the message another notifier holds) is found by its create. A redelivery most
      // likely finds them made: look first, and read the recipients only when some are missing.
      if (delivery?.redelivered === false) {
        await attemptAll(drafts(message, text, await recipients(message)));
      } else {
        const reading = recipients(message);
        reading.catch(() => {}); // awaited below when needed; a settled standing leaves it unread
        const standing = await notifications.standing(message.event_id, CHANNELS.length, now());
        if (standing.status === 'busy') {
          counts.busy += 1;
          throw putOff(message.event_id, standing.leaseUntil);
        }
        if (standing.status === 'open') await attemptAll(drafts(message, text, await reading));
      }
      await inbox.mark(NOTIFIER_CONSUMER, message);
    },
    metrics: sender.metrics,
    async retryDue() {
      const tried = await Promise.all(CHANNELS.map((channel) => retryChannel(channel)));
      return tried.reduce((sum, n) => sum + n, 0);
    },
    start() {
      if (running) return;
      running = true;
      for (const channel of CHANNELS) schedule(channel, 0);
    },
    async stop() {
      running = false;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      while (passes.size > 0) await Promise.allSettled([...passes]);
    },
  };
}
