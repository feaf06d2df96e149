import type { Logger } from './ports/logger.ts';
import { NO_METRICS } from './ports/metrics.ts';
import type { Metrics } from './ports/metrics.ts';
import type { ChannelAlerts } from './notifications/channelHealth.ts';
import type { Channel } from './notifications/transport.ts';

/**
 * Alerts: the conditions an operator must act on, each raised once, wherever it is noticed, and
 * cleared once it is gone.
 *
 * - `saga_stuck`: open sagas with no new event for ALERT_STUCK_AFTER_MS (one alert for all of
 *   them: a dead saga process strands hundreds at once, and one message says so better than
 *   hundreds);
 * - `dead_letter`: messages wait in the dead letters (one alert while any do);
 * - `reconciliation_anomaly`: the venue executed the swap of an order recorded as failed (one per
 *   order: each is money to settle by hand);
 * - `channel_misconfigured`: Telegram or the SMTP server refuses this service's settings (one per
 *   channel).
 *
 * An alert is a row of the `alerts` table while it is active: raising inserts it unless it is
 * there already, resolving marks it resolved, so of any number of processes noticing the same
 * thing exactly one logs it, counts it and messages the operator, and one says it is resolved.
 */
export const ALERT_KINDS = [
  'saga_stuck',
  'dead_letter',
  'reconciliation_anomaly',
  'channel_misconfigured',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export interface Alert {
  readonly kind: AlertKind;
  /** What the alert is about within its kind: `sagas`, `dead_letters`, an order id, a channel. */
  readonly subject: string;
  /** What an operator reads: what is wrong and where to look. */
  readonly detail: string;
}

export interface ActiveAlert extends Alert {
  readonly raised_at: Date;
}

/** The active alerts (table `alerts`, src/infra/alerts.ts), shared by every process. */
export interface AlertStore {
  /** Records the alert unless it is active already; true when this call recorded it. */
  raise(alert: Alert): Promise<boolean>;
  /** Marks the alert resolved; the alert when this call resolved it, undefined when none was active. */
  resolve(kind: AlertKind, subject: string): Promise<ActiveAlert | undefined>;
  active(kinds: readonly AlertKind[]): Promise<ActiveAlert[]>;
}

/** Where an operator is told (a Telegram chat, a mailbox); src/infra/alerts.ts builds them. */
export interface OperatorChannel {
  readonly name: string;
  send(subject: string, text: string): Promise<void>;
}

export interface AlertsDeps {
  readonly store: AlertStore;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Told of every alert raised and resolved; none: the log line and the metrics only. */
  readonly operators?: readonly OperatorChannel[];
}

const TITLES: Record<AlertKind, string> = {
  saga_stuck: 'sagas are stuck',
  dead_letter: 'messages were dead-lettered',
  reconciliation_anomaly: 'the venue executed the swap of a failed order',
  channel_misconfigured: 'a notification channel refuses the configuration',
};

const CHANNEL_SETTINGS: Record<Channel, string> = {
  telegram: 'TELEGRAM_BOT_TOKEN and TELEGRAM_API_ROOT',
  email: 'SMTP_URL',
};

/** Raises and resolves alerts: the log line, the counter and the operator's message, once each. */
export function createAlerts(deps: AlertsDeps) {
  const { store, logger } = deps;
  const metrics = deps.metrics ?? NO_METRICS;
  const operators = deps.operators ?? [];

  async function tell(subject: string, text: string): Promise<void> {
    await Promise.all(
      operators.map((operator) =>
        operator.send(subject, text).catch((error: unknown) => {
          logger.warn({ err: error, operator: operator.name }, 'could not message the operator');
        }),
      ),
    );
  }

  async function raise(alert: Alert): Promise<boolean> {
    if (!(await store.raise(alert))) return false;
    metrics.alertRaised(alert.kind);
    logger.error(
      { alert: alert.kind, subject: alert.subject, detail: alert.detail },
      `ALERT ${alert.kind}: ${alert.detail}`,
    );
    await tell(`ALERT: ${TITLES[alert.kind]}`, alert.detail);
    return true;
  }

  async function resolve(kind: AlertKind, subject: string): Promise<boolean> {
    const resolved = await store.resolve(kind, subject);
    if (!resolved) return false;
    const since = resolved.raised_at.toISOString();
    logger.info({ alert: kind, subject, raised_at: since }, `alert ${kind} resolved`);
    await tell(`Resolved: ${TITLES[kind]}`, `Resolved (raised ${since}): ${resolved.detail}`);
    return true;
  }

  /** Runs an alert's raise or resolve from a caller that must not wait (the notifier's sends). */
  const background = (work: Promise<unknown>) =>
    void work.catch((error: unknown) => logger.warn({ err: error }, 'recording an alert failed'));

  /** The notifier's side: a channel refusing the settings raises its alert; working clears it. */
  const channelAlerts: ChannelAlerts = {
    misconfigured(channel, reason) {
      background(
        raise({
          kind: 'channel_misconfigured',
          subject: channel,
          detail: `${channel} refuses this service's configuration (${reason}): check ${CHANNEL_SETTINGS[channel]}; its notifications wait until it is fixed`,
        }),
      );
    },
    working(channel) {
      background(resolve('channel_misconfigured', channel));
    },
  };

  return { raise, resolve, channelAlerts };
}

export type Alerts = ReturnType<typeof createAlerts>;

/** The conditions the sweeper looks for (src/infra/alerts.ts answers them from the database). */
export interface AlertConditions {
  /** Open sagas without a new event for `quietMs`: how many, and up to `sample` of them, oldest first. */
  stuckSagas(quietMs: number, sample: number): Promise<{ count: number; oldest: string[] }>;
  /** Failed orders whose swap the venue says it executed (swap_reconciliations). */
  reconciliationAnomalies(): Promise<{ order_id: string; tx_hash: string | null }[]>;
}

export interface AlertEvaluatorOptions {
  readonly alerts: Alerts;
  readonly store: AlertStore;
  readonly conditions: AlertConditions;
  /** Messages waiting in the dead letters, wherever the bus keeps them. */
  readonly deadLetterCount: () => Promise<number>;
  /** A saga without a new event for this long is stuck (ALERT_STUCK_AFTER_MS). */
  readonly stuckAfterMs: number;
  /** Where a condition that could not be looked at is reported. */
  readonly logger: Logger;
}

/** The kinds the evaluator owns: raised and resolved by looking, not by a notifier's sends. */
const EVALUATED: readonly AlertKind[] = ['saga_stuck', 'dead_letter', 'reconciliation_anomaly'];

const key = (kind: AlertKind, subject: string) => `${kind}\u0000${subject}`;

/**
 * Looks for the conditions and brings the alerts in line: raises what holds and is not active,
 * resolves what is active and no longer holds. Run by every sweeper; the store makes each raise
 * and resolve happen once however many run it.
 */
export function createAlertEvaluator(options: AlertEvaluatorOptions) {
  const { alerts, store, conditions, stuckAfterMs } = options;

  /**
   * What holds now, by kind. A condition that cannot be looked at (the broker down while counting
   * its dead letters) leaves its kind out, so its alerts stay as they are, and the others are still
   * evaluated: a broker outage is when sagas get stuck.
   */
  async function holding(): Promise<Map<AlertKind, Alert[]>> {
    const looks: Array<[AlertKind, () => Promise<Alert[]>]> = [
      [
        'saga_stuck',
        async () => {
          const stuck = await conditions.stuckSagas(stuckAfterMs, 5);
          if (stuck.count === 0) return [];
          return [
            {
              kind: 'saga_stuck',
              subject: 'sagas',
              detail:
                `${stuck.count} saga(s) made no progress for ${stuckAfterMs} ms (oldest: ${stuck.oldest.join(', ')}); ` +
                'is a process with the saga role running? The sweeper resumes them after SWEEP_STALE_MS',
            },
          ];
        },
      ],
      [
        'dead_letter',
        async () => {
          const count = await options.deadLetterCount();
          if (count === 0) return [];
          return [
            {
              kind: 'dead_letter',
              subject: 'dead_letters',
              detail: `${count} message(s) wait in the dead letters: inspect them, fix the cause and replay them (redrive)`,
            },
          ];
        },
      ],
      [
        'reconciliation_anomaly',
        async () =>
          (await conditions.reconciliationAnomalies()).map((anomaly) => ({
            kind: 'reconciliation_anomaly' as const,
            subject: anomaly.order_id,
            detail: `the venue executed the swap of order ${anomaly.order_id} (tx ${anomaly.tx_hash ?? 'unknown'}), which is recorded as failed: settle it by hand`,
          })),
      ],
    ];
    const results = await Promise.allSettled(looks.map(([, look]) => look()));
    const found = new Map<AlertKind, Alert[]>();
    results.forEach((result, i) => {
      const kind = looks[i]?.[0];
      if (kind === undefined) return;
      if (result.status === 'fulfilled') found.set(kind, result.value);
      else
        options.logger.warn(
          { err: result.reason as unknown, alert: kind },
          'could not look for an alert condition',
        );
    });
    return found;
  }

  return {
    /** One look: raises and resolves; resolves with the alerts that hold now. */
    async evaluateOnce(): Promise<Alert[]> {
      const [byKind, active] = await Promise.all([holding(), store.active(EVALUATED)]);
      const found = [...byKind.values()].flat();
      const activeKeys = new Set(active.map((a) => key(a.kind, a.subject)));
      const foundKeys = new Set(found.map((a) => key(a.kind, a.subject)));
      for (const alert of found) {
        if (!activeKeys.has(key(alert.kind, alert.subject))) await alerts.raise(alert);
      }
      for (const alert of active) {
        const looked = byKind.has(alert.kind);
        if (looked && !foundKeys.has(key(alert.kind, alert.subject)))
          await alerts.resolve(alert.kind, alert.subject);
      }
      return found;
    },
  };
}

export type AlertEvaluator = ReturnType<typeof createAlertEvaluator>;
