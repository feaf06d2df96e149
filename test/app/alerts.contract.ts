import { randomInt, randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAlertEvaluator, createAlerts } from '../../src/app/alerts.ts';
import type { AlertEvaluator } from '../../src/app/alerts.ts';
import type { Consumer } from '../../src/app/messages.ts';
import { PoisonMessageError } from '../../src/app/messages.ts';
import { createChannelsService } from '../../src/app/notifications/channels.ts';
import { createNotifier } from '../../src/app/notifications/notifier.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { currencies } from '../../src/domain/money.ts';
import {
  createAlertConditions,
  createAlertStore,
  createDeadLetterCounter,
  operatorChannels,
} from '../../src/infra/alerts.ts';
import { topology } from '../../src/infra/bus/rabbit/topology.ts';
import { createServiceMetrics } from '../../src/infra/metrics.ts';
import type { ServiceMetrics } from '../../src/infra/metrics.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createMailer } from '../../src/infra/notify/mail.ts';
import type { Mailer } from '../../src/infra/notify/mail.ts';
import { createTelegramClient } from '../../src/infra/notify/telegram.ts';
import { createUserChannelStore } from '../../src/infra/notify/userChannels.ts';
import { createSimulatedMarket } from '../../src/infra/venues/simulatedMarket.ts';
import { redriveDeadLetters } from '../../src/ops/redrive.ts';
import { notifierPorts, wireOrderFlow, wireOrders } from '../../src/wiring.ts';
import { sample } from '../helpers/metrics.ts';
import { startBotApiFront, startMailSink, startTelegramEmulator } from '../helpers/notifyPeers.ts';
import type { BotApiFront, MailSink, TelegramEmulator } from '../helpers/notifyPeers.ts';
import { anOrder, FAST_SETTINGS } from '../helpers/saga.ts';
import { until } from '../helpers/wait.ts';

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly alert?: string;
}

/** A logger keeping every line, as an operator's log file would. */
function recordingLogger() {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) },
  );
  return { logger, lines };
}

/** A sweeper process's side of the alerts: its own logger and metrics, the shared database. */
interface SweeperAlerts {
  readonly evaluator: AlertEvaluator;
  readonly lines: LogLine[];
  readonly metrics: ServiceMetrics;
}

/**
 * Alerts against real peers: the database (`open` gives each suite a database of its own, since
 * the conditions look at every open saga and dead letter), the telegram-test-api Bot API emulator
 * as the operator's Telegram, an smtp-server as the operator's mailbox.
 */
export function alertsContract(open: () => Promise<{ db: Database; close(): Promise<void> }>) {
  let db: Database;
  let close: () => Promise<void>;
  let emulator: TelegramEmulator;
  let sink: MailSink;
  let mailer: Mailer;
  const token = `${randomInt(1, 2 ** 30)}:alerts`;
  const operatorChat = String(randomInt(1, 2 ** 40));
  const operatorEmail = `operator-${randomUUID()}@example.test`;
  const market = createSimulatedMarket({ seed: 11 });

  beforeAll(async () => {
    const opened = await open();
    db = opened.db;
    close = () => opened.close();
    emulator = await startTelegramEmulator();
    sink = await startMailSink();
    mailer = createMailer({ smtpUrl: sink.smtpUrl, from: 'alerts <alerts@example.test>', timeoutMs: 5_000 });
  });
  afterAll(async () => {
    mailer?.close();
    await Promise.all([emulator?.stop(), sink?.stop()]);
    await close?.();
  });

  const operators = () =>
    operatorChannels({
      telegram: createTelegramClient({ token, apiRoot: emulator.apiRoot }),
      telegramChatId: operatorChat,
      mail: mailer,
      email: operatorEmail,
    });
  const toOperator = () => emulator.sent(token).filter((m) => m.chat_id === operatorChat);

  function sweeperAlerts(
    stuckAfterMs: number,
    deadLetterCount = () => createDeadLetterCounter(db).count(),
  ): SweeperAlerts {
    const { logger, lines } = recordingLogger();
    const metrics = createServiceMetrics({ db, stuckAfterMs, logger: silentLogger, processMetrics: false });
    const store = createAlertStore(db);
    const alerts = createAlerts({ store, logger, metrics, operators: operators() });
    const evaluator = createAlertEvaluator({
      alerts,
      store,
      conditions: createAlertConditions(db),
      deadLetterCount,
      stuckAfterMs,
      logger,
    });
    return { evaluator, lines, metrics };
  }

  const alertLines = (sweepers: readonly SweeperAlerts[], kind: string, level: number) =>
    sweepers.flatMap((s) => s.lines).filter((line) => line.alert === kind && line.level === level);
  const raised = (sweepers: readonly SweeperAlerts[], kind: string) =>
    Promise.all(
      sweepers.map(async (s) =>
        sample(await s.metrics.render(), 'market_order_saga_alerts_raised_total', { kind }),
      ),
    ).then((counts) => counts.reduce((a, b) => a + b, 0));
  const active = async (kind: string) =>
    sample(await sweeperAlerts(60_000).metrics.render(), 'market_order_saga_alerts_active', { kind });

  describe('when a message is dead-lettered, with two sweepers looking', () => {
    it('raises one alert (one error line, one count, one message to the operator) and clears it once the message is redriven', async () => {
      // A consumer that cannot handle the first delivery of each message: a bug, fixed by the redrive.
      const refused = new Set<string>();
      const handled = new Set<string>();
      const picky: Consumer = {
        name: 'picky-reporter',
        eventTypes: ['OrderAccepted'],
        handle(message) {
          if (refused.has(message.event_id)) {
            handled.add(message.event_id);
            return Promise.resolve();
          }
          refused.add(message.event_id);
          return Promise.reject(new PoisonMessageError(`cannot report ${message.event_id} yet`));
        },
      };
      const flow = wireOrderFlow({
        db,
        logger: silentLogger,
        prices: market.priceService,
        venue: market.venue,
        currencies: currencies(),
        settings: FAST_SETTINGS,
        consumers: [picky],
      });
      flow.delivery.start();
      try {
        const { order_id } = await flow.orders.accept(anOrder(), { causationId: null });
        await until(async () => {
          const rows = await db.query('SELECT 1 FROM dead_letters WHERE aggregate_id = $1', [order_id]);
          return rows.length === 1;
        }, 'the dead letter');

        const sweepers = [sweeperAlerts(60_000), sweeperAlerts(60_000)];
        for (let round = 0; round < 3; round++) {
          await Promise.all(sweepers.map((s) => s.evaluator.evaluateOnce()));
        }
        expect(alertLines(sweepers, 'dead_letter', 50)).toHaveLength(1);
        expect(alertLines(sweepers, 'dead_letter', 50)[0]?.msg).toMatch(
          /^ALERT dead_letter: 1 message\(s\) wait/,
        );
        expect(await raised(sweepers, 'dead_letter')).toBe(1);
        expect(await active('dead_letter')).toBe(1);
        const told = await emulator.waitForSent(token, 1);
        expect(told.filter((m) => m.chat_id === operatorChat).map((m) => m.text)).toEqual([
          expect.stringMatching(/^\[market-order-saga\] ALERT: messages were dead-lettered\n1 message/),
        ]);
        const mails = await sink.waitForMails(operatorEmail, 1);
        expect(mails.map((m) => m.subject)).toEqual([
          '[market-order-saga] ALERT: messages were dead-lettered',
        ]);

        expect(await redriveDeadLetters(db)).toEqual({ 'picky-reporter': 1 });
        // The redriven message reaches the fixed consumer, which handles it this time.
        await until(() => handled.size === 1, 'the redriven message to be handled');
        for (let round = 0; round < 2; round++) {
          await Promise.all(sweepers.map((s) => s.evaluator.evaluateOnce()));
        }
        expect(alertLines(sweepers, 'dead_letter', 30)).toHaveLength(1);
        expect(await active('dead_letter')).toBe(0);
        await emulator.waitForSent(token, 2);
        expect(toOperator().map((m) => m.text.split('\n')[0])).toEqual([
          '[market-order-saga] ALERT: messages were dead-lettered',
          '[market-order-saga] Resolved: messages were dead-lettered',
        ]);
      } finally {
        await flow.delivery.stop();
      }
    });
  });

  describe('when a saga makes no progress past the threshold', () => {
    it('raises the stuck-saga alert once and clears it once the saga has run', async () => {
      // Intake only: nothing delivers the order to a saga, as when every saga process is down.
      const wired = wireOrders({
        db,
        logger: silentLogger,
        prices: market.priceService,
        venue: market.venue,
        currencies: currencies(),
        settings: FAST_SETTINGS,
      });
      const { order_id } = await wired.orders.accept(anOrder(), { causationId: null });
      // Its dead letters cannot be counted (a broker that refuses connections): the stuck saga is
      // alerted all the same.
      const unreachable = createDeadLetterCounter(db, {
        amqpUrl: 'amqp://127.0.0.1:1',
        topology: topology(),
      });
      const sweeper = sweeperAlerts(300, () => unreachable.count());
      const messagesBefore = toOperator().length;
      const found = await until(async () => {
        const alerts = await sweeper.evaluator.evaluateOnce();
        return alerts.find((a) => a.kind === 'saga_stuck');
      }, 'the saga to be stuck');
      expect(found.detail).toContain(order_id);
      await sweeper.evaluator.evaluateOnce();
      expect(alertLines([sweeper], 'saga_stuck', 50)).toHaveLength(1);
      expect(alertLines([sweeper], 'dead_letter', 40)[0]?.msg).toBe('could not look for an alert condition');
      expect(await active('saga_stuck')).toBe(1);
      expect(sample(await sweeper.metrics.render(), 'market_order_saga_sagas_stuck')).toBe(1);

      expect((await wired.runner.run(order_id)).status).toMatch(/^(completed|failed)$/);
      await sweeper.evaluator.evaluateOnce();
      expect(alertLines([sweeper], 'saga_stuck', 30)).toHaveLength(1);
      expect(await active('saga_stuck')).toBe(0);
      await emulator.waitForSent(token, messagesBefore + 2);
      expect(
        toOperator()
          .slice(messagesBefore)
          .map((m) => m.text.split('\n')[0]),
      ).toEqual([
        '[market-order-saga] ALERT: sagas are stuck',
        '[market-order-saga] Resolved: sagas are stuck',
      ]);
    });
  });

  describe('when the Bot API refuses the bot token (401)', () => {
    let front: BotApiFront;
    beforeAll(async () => {
      front = await startBotApiFront(emulator.apiRoot);
    });
    afterAll(async () => {
      await front?.stop();
    });

    it('raises the channel alert once, tells the operator by email, and clears it once Telegram works again', async () => {
      const { logger, lines } = recordingLogger();
      const metrics = createServiceMetrics({
        db,
        stuckAfterMs: 60_000,
        logger: silentLogger,
        processMetrics: false,
      });
      // The operator's email only: the Telegram bot is the one that is broken.
      const alerts = createAlerts({
        store: createAlertStore(db),
        logger,
        metrics,
        operators: operatorChannels({ mail: mailer, email: operatorEmail }),
      });
      const notifier = createNotifier({
        ...notifierPorts(db),
        logger: silentLogger,
        telegram: createTelegramClient({
          token: `${randomInt(1, 2 ** 30)}:user-bot`,
          apiRoot: front.apiRoot,
        }),
        retryMinDelayMs: 10,
        retryMaxDelayMs: 20,
        metrics,
        channelAlerts: alerts.channelAlerts,
      });
      const flow = wireOrderFlow({
        db,
        logger: silentLogger,
        prices: market.priceService,
        venue: market.venue,
        currencies: currencies(),
        settings: FAST_SETTINGS,
        consumers: [notifier],
      });
      const mailsBefore = sink.mailsTo(operatorEmail).length;
      front.answerAll({ status: 401, body: { ok: false, error_code: 401, description: 'Unauthorized' } });
      flow.delivery.start();
      try {
        const orders = [anOrder(), anOrder()];
        for (const order of orders) {
          await createChannelsService(createUserChannelStore(db)).update(order.user_id, {
            telegram_chat_id: String(randomInt(1, 2 ** 40)),
          });
          await flow.orders.accept(order, { causationId: null });
        }
        await until(async () => (await active('channel_misconfigured')) === 1, 'the channel alert');
        const [mail] = await sink
          .waitForMails(operatorEmail, mailsBefore + 1)
          .then((m) => m.slice(mailsBefore));
        expect(mail?.subject).toBe(
          '[market-order-saga] ALERT: a notification channel refuses the configuration',
        );
        expect(mail?.text).toMatch(
          /^telegram refuses this service's configuration \(Telegram 401: Unauthorized\): check TELEGRAM_BOT_TOKEN/,
        );

        front.answerAll();
        await until(async () => {
          await notifier.retryDue();
          const sent = sample(await metrics.render(), 'market_order_saga_notifications_total', {
            channel: 'telegram',
            outcome: 'sent',
          });
          return sent === 2 && (await active('channel_misconfigured')) === 0;
        }, 'both notifications sent and the channel alert cleared');
        expect(lines.filter((l) => l.alert === 'channel_misconfigured').map((l) => l.level)).toEqual([
          50, 30,
        ]);
        expect(
          sample(await metrics.render(), 'market_order_saga_alerts_raised_total', {
            kind: 'channel_misconfigured',
          }),
        ).toBe(1);
        expect(
          sample(await metrics.render(), 'market_order_saga_notifications_total', {
            channel: 'telegram',
            outcome: 'sent',
          }),
        ).toBe(2);
        const after = await sink.waitForMails(operatorEmail, mailsBefore + 2);
        expect(after.at(-1)?.subject).toBe(
          '[market-order-saga] Resolved: a notification channel refuses the configuration',
        );
      } finally {
        front.answerAll();
        await flow.delivery.stop();
      }
    });
  });
}
