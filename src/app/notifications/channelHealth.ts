import type { Logger } from '../ports/logger.ts';
import { ChannelMisconfiguredError } from './transport.ts';
import type { Channel } from './transport.ts';

/**
 * Told when a channel's provider refuses the configuration and when the channel works again
 * (src/app/alerts.ts raises and clears the operator's alert). Must not throw nor wait.
 */
export interface ChannelAlerts {
  misconfigured(channel: Channel, reason: string): void;
  working(channel: Channel): void;
}

/*
 * Consecutive transient failures after which a channel counts as failing. More than one, so that
 * one recipient's trouble (a mailbox greylisting us) does not stop the channel for everyone, and
 * few, so that an outage is recognised while the first messages are still being tried.
 */
const FAILING_AFTER = 3;

const NAMES: Record<Channel, string> = { telegram: 'Telegram', email: 'Email' };
const SETTINGS: Record<Channel, string> = {
  telegram: 'TELEGRAM_BOT_TOKEN and TELEGRAM_API_ROOT',
  email: 'SMTP_URL',
};

/**
 * What a notifier knows about each channel's provider from its own sends (per process: another
 * notifier learns the same from its own). While a channel is failing, new notifications on it wait
 * for the retry loop instead of each spending the time a send may take on a provider that is down,
 * so they hold up nothing, and the loop tries one at a time until one goes through.
 *
 * An outage is logged when it starts and when it ends, not once per message; a configuration error
 * (ChannelMisconfiguredError) is logged once at error level, naming the settings to fix.
 */
export interface ChannelHealth {
  /** Why the channel is failing, or undefined while it works (as far as this notifier knows). */
  failing(channel: Channel): string | undefined;
  failed(channel: Channel, error: unknown): void;
  worked(channel: Channel): void;
}

interface State {
  failures: number;
  misconfigured: boolean;
  reason: string;
  since: Date | undefined;
}

export function channelHealth(
  logger: Logger,
  retryFor: string,
  now: () => Date,
  alerts?: ChannelAlerts,
): ChannelHealth {
  const states = new Map<Channel, State>();
  // Channels seen working since this process started or since they were last misconfigured: the
  // first success clears an alert another process (or this one before a restart) may have left.
  const seenWorking = new Set<Channel>();
  const isFailing = (state: State | undefined) =>
    state !== undefined && (state.misconfigured || state.failures >= FAILING_AFTER);

  return {
    failing(channel) {
      const state = states.get(channel);
      return isFailing(state) ? state?.reason : undefined;
    },
    failed(channel, error) {
      const state = states.get(channel) ?? {
        failures: 0,
        misconfigured: false,
        reason: '',
        since: undefined,
      };
      const wasFailing = isFailing(state);
      state.failures += 1;
      state.reason = error instanceof Error ? error.message : String(error);
      state.since ??= now();
      states.set(channel, state);
      const context = { channel, reason: state.reason };
      if (error instanceof ChannelMisconfiguredError && !state.misconfigured) {
        state.misconfigured = true;
        seenWorking.delete(channel);
        alerts?.misconfigured(channel, state.reason);
        logger.error(
          context,
          `${NAMES[channel]} refuses this service's configuration (${state.reason}): check ${SETTINGS[channel]}. ` +
            `Its notifications are kept and retried for ${retryFor}, and go out once it is fixed.`,
        );
      } else if (!wasFailing && isFailing(state)) {
        logger.warn(
          context,
          `${NAMES[channel]} is failing: its notifications wait and are retried for ${retryFor}`,
        );
      }
    },
    worked(channel) {
      if (!seenWorking.has(channel)) {
        seenWorking.add(channel);
        alerts?.working(channel);
      }
      const state = states.get(channel);
      if (!state) return;
      states.delete(channel);
      if (isFailing(state))
        logger.info(
          { channel, failing_since: state.since?.toISOString(), last_error: state.reason },
          `${NAMES[channel]} works again`,
        );
    },
  };
}
