import type { NotificationText } from './texts.ts';

/** The channels a user can be notified on; the values of `notifications.channel`. */
export type Channel = 'telegram' | 'email';

export const CHANNELS: readonly Channel[] = ['telegram', 'email'];

/**
 * Sends one notification to one recipient (a Telegram chat id, an email address). Implemented in
 * src/infra/notify. Resolves once the provider accepted the message.
 *
 * @throws PermanentDeliveryError when the provider refused for a reason a retry cannot change
 *   (chat not found, bot blocked, mailbox does not exist);
 * @throws ChannelMisconfiguredError when the provider refuses this service's settings (a revoked
 *   token, a wrong API root): every notification would fail alike until an operator fixes them;
 * @throws any other error when the outcome may change later (rate limit, provider down, timeout):
 *   the notifier keeps the notification and retries it later (see notifier.ts).
 */
export interface NotificationTransport {
  send(recipient: string, message: NotificationText): Promise<void>;
}

/** The provider refused the notification for good; the reason is what it said. */
export class PermanentDeliveryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentDeliveryError';
  }
}

/** The provider could not take the notification now (after the client's own bounded retries). */
export class TransientDeliveryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransientDeliveryError';
  }
}

/**
 * The provider refuses this service's configuration, not the notification: no message can go out
 * on the channel until an operator fixes a setting. Transient for the notification (it is kept and
 * retried once the setting is fixed), and said once, loudly, rather than once per message.
 */
export class ChannelMisconfiguredError extends TransientDeliveryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChannelMisconfiguredError';
  }
}
