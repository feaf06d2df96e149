import { performance } from 'node:perf_hooks';
import { failpoint } from '../failpoints.ts';
import type { Logger } from '../ports/logger.ts';
import { NO_METRICS } from '../ports/metrics.ts';
import type { Metrics } from '../ports/metrics.ts';
import { channelHealth } from './channelHealth.ts';
import type { ChannelAlerts } from './channelHealth.ts';
import { durationHistogram } from './metrics.ts';
import type { DurationHistogram } from './metrics.ts';
import { givenUpReason } from './notificationStore.ts';
import type { HeldNotification, NotificationDraft, NotificationStore } from './notificationStore.ts';
import { PermanentDeliveryError } from './transport.ts';
import type { Channel, NotificationTransport } from './transport.ts';

/** What a notifier has done since it was created (tests read it; an exporter could). */
export interface NotifierMetrics {
  readonly sent: number;
  /** Recorded failed: refused for good, or given up at the retry horizon. */
  readonly failed: number;
  readonly skipped: number;
  /** Deliveries that found a notification claimed by another notifier and were put off. */
  readonly busy: number;
  /** Claims of a notification that had been claimed before (after a transient error or a crash). */
  readonly reclaimed: number;
  /** Sends recorded after this notifier's lease had expired: another may have sent them too. */
  readonly leaseLost: number;
  /** Notifications left to the retry loop: after a transient failure, or while their channel failed. */
  readonly retrying: number;
  /** Notifications recorded failed because the retry horizon passed (counted in `failed` too). */
  readonly gaveUp: number;
  /**
   * The duplicate window, at most: from the start of a successful send to the commit of its
   * record. A crash inside it, once the provider has taken the message, leaves a notification
   * sent but not recorded, sent again when the lease expires; nowhere else can a duplicate arise.
   */
  readonly duplicateWindow: DurationHistogram;
  /** The duplicate window, at least: from the provider's answer to the commit of the record. */
  readonly recordLag: DurationHistogram;
}

export interface SenderOptions {
  readonly notifications: NotificationStore;
  readonly logger: Logger;
  /** A channel without a transport is recorded as skipped. */
  readonly transports: Readonly<Record<Channel, NotificationTransport | undefined>>;
  readonly now: () => Date;
  /** How long after its creation a notification is still retried. */
  readonly retryForMs: number;
  /** Wait before a notification's next attempt: doubles with each attempt, from min to max. */
  readonly retryMinDelayMs: number;
  readonly retryMaxDelayMs: number;
  /** Counts every attempt's outcome by channel (none when unset). */
  readonly metrics?: Metrics | undefined;
  /** Raises and clears the alert of a channel that refuses this service's configuration. */
  readonly channelAlerts?: ChannelAlerts | undefined;
  /** See NotifierDeps.afterSend. */
  readonly afterSend?: ((notification: HeldNotification) => Promise<void> | void) | undefined;
}

/** Why a channel has nothing to send, or undefined when it has. */
export function skipReason(
  channel: Channel,
  address: string | undefined,
  transport: unknown,
): string | undefined {
  const noun = channel === 'telegram' ? 'Telegram chat id' : 'email address';
  if (address === undefined) return `the user has no ${noun}`;
  if (transport === undefined)
    return channel === 'telegram'
      ? 'Telegram is not configured (TELEGRAM_BOT_TOKEN)'
      : 'email is not configured (SMTP_URL)';
  return undefined;
}

/** A duration as an operator reads it in a log line or a recorded reason: "24 h", "90 s". */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1_000 === 0) return `${ms / 1_000} s`;
  return `${ms} ms`;
}

/**
 * Sends notifications this notifier holds and settles each: recorded sent, recorded failed
 * (refused for good, or past the retry horizon), or given back to wait for its next attempt after
 * a transient failure, with a backoff that doubles per attempt and never passes the horizon. Keeps
 * the channels' health (channelHealth.ts) and the notifier's metrics.
 */
export function createSender(options: SenderOptions) {
  const { notifications, logger, transports, now, retryForMs } = options;
  const retryFor = formatDuration(retryForMs);
  const health = channelHealth(logger, retryFor, now, options.channelAlerts);
  const metrics = options.metrics ?? NO_METRICS;
  const counts = {
    sent: 0,
    failed: 0,
    skipped: 0,
    busy: 0,
    reclaimed: 0,
    leaseLost: 0,
    retrying: 0,
    gaveUp: 0,
  };
  const window = durationHistogram();
  const lag = durationHistogram();

  function logSkipped(notification: NotificationDraft | HeldNotification, reason: string) {
    counts.skipped += 1;
    metrics.notification(notification.channel, 'skipped');
    // Routine (a user without an email address: every order), and its row records the reason:
    // at info it was a log line an order.
    logger.debug({ ...logContext(notification), reason, text: notification.text }, 'notification not sent');
  }

  function logGivenUp(
    notification: Pick<HeldNotification, 'event_id' | 'order_id' | 'channel'>,
    reason: string,
  ) {
    counts.failed += 1;
    counts.gaveUp += 1;
    metrics.notification(notification.channel, 'failed');
    const { event_id, order_id, channel } = notification;
    logger.warn({ event_id, order_id, channel, reason }, 'notification given up');
  }

  async function settleFailure(held: HeldNotification, error: unknown): Promise<void> {
    const reason = error instanceof Error ? error.message : String(error);
    if (error instanceof PermanentDeliveryError) {
      await notifications.record(held, { status: 'failed', reason });
      counts.failed += 1;
      metrics.notification(held.channel, 'failed');
      logger.warn({ ...logContext(held), reason }, 'notification refused for good');
      return;
    }
    health.failed(held.channel, error);
    const at = now().getTime();
    const horizon = held.created_at.getTime() + retryForMs;
    if (at >= horizon) {
      const final = givenUpReason(retryFor, reason);
      await notifications.record(held, { status: 'failed', reason: final });
      logGivenUp(held, final);
      return;
    }
    const backoff = Math.min(options.retryMaxDelayMs, options.retryMinDelayMs * 2 ** (held.attempts - 1));
    const next = new Date(Math.min(horizon, at + backoff));
    await notifications.scheduleRetry(held, reason, next);
    counts.retrying += 1;
    metrics.notification(held.channel, 'retrying');
    // While the channel fails, its outage was logged once; each notification's retry is detail.
    logger[health.failing(held.channel) === undefined ? 'info' : 'debug'](
      { ...logContext(held), reason, attempts: held.attempts, next_attempt_at: next.toISOString() },
      'notification not sent; it will be retried',
    );
  }

  /** Sends a held notification and settles it; rejects only when it could not be recorded. */
  async function attempt(held: HeldNotification): Promise<void> {
    const transport = transports[held.channel];
    const reason = skipReason(held.channel, held.recipient ?? undefined, transport);
    if (reason !== undefined || held.recipient === null || transport === undefined) {
      // Taken over after the transport was switched off: nothing can send it now.
      await notifications.record(held, { status: 'skipped', reason: reason ?? 'nothing to send' });
      logSkipped(held, reason ?? 'nothing to send');
      return;
    }
    const started = performance.now();
    try {
      await transport.send(held.recipient, { subject: held.subject, text: held.text });
    } catch (error) {
      await settleFailure(held, error);
      return;
    }
    const sentMs = performance.now() - started;
    failpoint('notifier.after-send');
    await options.afterSend?.(held);
    const { heldLease } = await notifications.record(held, { status: 'sent', at: now() });
    const windowMs = performance.now() - started;
    window.observe(windowMs);
    lag.observe(windowMs - sentMs);
    counts.sent += 1;
    metrics.notification(held.channel, 'sent');
    if (!heldLease) counts.leaseLost += 1;
    health.worked(held.channel);
    logger[heldLease ? 'info' : 'warn'](
      {
        ...logContext(held),
        attempts: held.attempts,
        send_ms: round(sentMs),
        record_ms: round(windowMs - sentMs),
        held_lease: heldLease,
      },
      heldLease
        ? 'notification sent'
        : 'notification sent after its lease expired: it may have been sent twice',
    );
  }

  return {
    attempt,
    health,
    /** Counters the notifier adds to (put-off deliveries, claims taken over, waiting rows). */
    counts,
    /** The retry horizon, as the logs and recorded reasons say it. */
    retryFor,
    logSkipped,
    logGivenUp,
    metrics: (): NotifierMetrics => ({ ...counts, duplicateWindow: window.read(), recordLag: lag.read() }),
  };
}

export type Sender = ReturnType<typeof createSender>;

export function logContext(notification: NotificationDraft | HeldNotification) {
  return {
    event_id: notification.event_id,
    order_id: notification.order_id,
    channel: notification.channel,
    user_id: notification.user_id,
  };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
