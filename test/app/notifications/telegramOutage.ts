import { randomInt, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChannelsService } from '../../../src/app/notifications/channels.ts';
import { createNotifier, NOTIFIER_CONSUMER } from '../../../src/app/notifications/notifier.ts';
import type { Notifier } from '../../../src/app/notifications/notifier.ts';
import { createEventStore } from '../../../src/infra/eventStore.ts';
import { silentLogger } from '../../../src/infra/logger.ts';
import { createMailer } from '../../../src/infra/notify/mail.ts';
import type { Mailer } from '../../../src/infra/notify/mail.ts';
import { createTelegramClient } from '../../../src/infra/notify/telegram.ts';
import type { BusHarness } from '../../helpers/buses.ts';
import { aCatalogueEvent, aMessage } from '../../helpers/messages.ts';
import { startMailSink, startTelegramEmulator } from '../../helpers/notifyPeers.ts';
import type { MailSink, TelegramEmulator } from '../../helpers/notifyPeers.ts';
import { startTcpProxy } from '../../helpers/tcpProxy.ts';
import type { TcpProxy } from '../../helpers/tcpProxy.ts';
import { until } from '../../helpers/wait.ts';
import { notifierPorts } from '../../../src/wiring.ts';
import { createUserChannelStore } from '../../../src/infra/notify/userChannels.ts';

/**
 * Issue 9: Telegram down for longer than the delivery limit while SMTP works. Two notifiers (as two
 * processes would run them) consume a real bus; Telegram's address is a TCP proxy in front of the
 * Bot API emulator, cut for the outage (connections dropped as they open) and restored after it.
 */
export function telegramOutageSuite(label: string, open: () => Promise<BusHarness>): void {
  describe(`notifications on ${label} while Telegram is down`, () => {
    let bus: BusHarness;
    let emulator: TelegramEmulator;
    let telegram: TcpProxy;
    let sink: MailSink;
    let mailer: Mailer;

    beforeAll(async () => {
      bus = await open();
      emulator = await startTelegramEmulator();
      telegram = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(emulator.apiRoot).port) });
      sink = await startMailSink();
      mailer = createMailer({ smtpUrl: sink.smtpUrl, from: 'noreply@example.test', timeoutMs: 5_000 });
    });
    afterAll(async () => {
      mailer?.close();
      await bus?.close();
      await Promise.all([telegram?.close(), emulator?.stop(), sink?.stop()]);
    });

    /** A stored order of a fresh user with a Telegram chat and an email address, and its end. */
    async function finishedOrder() {
      const orderId = randomUUID();
      await createEventStore(bus.db).append([
        {
          aggregate_id: orderId,
          aggregate_type: 'order',
          expected_version: 0,
          events: [aCatalogueEvent(orderId, 'OrderAccepted')],
        },
      ]);
      const chat = String(randomInt(1, 2 ** 40));
      const email = `trader-${randomUUID()}@example.test`;
      await createChannelsService(createUserChannelStore(bus.db)).update(`user-${orderId}`, {
        telegram_chat_id: chat,
        email,
      });
      return { chat, email, message: { ...aMessage('OrderCompleted', orderId), version: 2 } };
    }

    async function telegramRows(eventIds: readonly string[]) {
      return bus.db.query<{ status: string; attempts: number }>(
        `SELECT status, attempts FROM notifications WHERE channel = 'telegram' AND event_id = ANY($1::uuid[])`,
        [eventIds],
      );
    }

    async function processed(eventIds: readonly string[]): Promise<number> {
      const [row] = await bus.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM processed_events WHERE event_id = ANY($1::uuid[]) AND processed_by = $2',
        [eventIds, NOTIFIER_CONSUMER],
      );
      return row?.n ?? 0;
    }

    it('sends every email at once and every Telegram message once it is back: nothing dead-lettered, no row left sending', async () => {
      const token = `${randomInt(1, 1e9)}:outage`;
      const notifiers: Notifier[] = [0, 1].map(() =>
        createNotifier({
          ...notifierPorts(bus.db),
          logger: silentLogger,
          telegram: createTelegramClient({
            token,
            apiRoot: `http://127.0.0.1:${telegram.port}`,
            // One request a send: retries across time are the retry loop's.
            timeoutMs: 2_000,
            maxSendMs: 2_000,
          }),
          mail: mailer,
          retryMinDelayMs: 10,
          retryMaxDelayMs: 100,
          retryIntervalMs: 20,
        }),
      );
      for (const notifier of notifiers) {
        await bus.run(notifier);
        notifier.start();
      }
      try {
        telegram.cut();
        const orders = await Promise.all(Array.from({ length: 8 }, () => finishedOrder()));
        const eventIds = orders.map((order) => order.message.event_id);
        for (const { message } of orders) await bus.publish(notifiers[0] as Notifier, message);

        for (const { email } of orders) expect(await sink.waitForMails(email, 1)).toHaveLength(1);
        await until(
          async () => (await processed(eventIds)) === orders.length,
          'every message processed while Telegram is down',
          20_000,
        );
        await until(
          async () => (await telegramRows(eventIds)).every((row) => row.attempts > bus.deliveryLimit),
          'each Telegram notification tried more often than a message may be delivered',
          20_000,
        );
        expect(emulator.sent(token)).toEqual([]);

        telegram.restore();

        await emulator.waitForSent(token, orders.length);
        await until(
          async () => (await telegramRows(eventIds)).every((row) => row.status === 'sent'),
          'every Telegram notification recorded sent',
          20_000,
        );
        const sent = emulator.sent(token).map((m) => m.chat_id);
        expect(sent.toSorted()).toEqual(orders.map((order) => order.chat).toSorted());
        for (const { email, message } of orders) {
          expect(sink.mailsTo(email)).toHaveLength(1);
          expect(await bus.deadLetters(notifiers[0] as Notifier, message.event_id)).toEqual([]);
        }
        const [stillSending] = await bus.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM notifications WHERE status = 'sending' AND event_id = ANY($1::uuid[])`,
          [eventIds],
        );
        expect(stillSending?.n).toBe(0);
        expect(await processed(eventIds)).toBe(orders.length);
      } finally {
        telegram.restore();
        for (const notifier of notifiers) await notifier.stop();
        await bus.stopAll();
      }
    });
  });
}
