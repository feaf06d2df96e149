import { spawn } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetryLaterError } from '../../../src/app/messages.ts';
import { createChannelsService } from '../../../src/app/notifications/channels.ts';
import type { ChannelChanges } from '../../../src/app/notifications/channels.ts';
import {
  createNotifier,
  DEFAULT_LEASE_MS,
  NOTIFIER_CONSUMER,
} from '../../../src/app/notifications/notifier.ts';
import type { Notifier, NotifierDeps, NotifierMetrics } from '../../../src/app/notifications/notifier.ts';
import type { DurationHistogram } from '../../../src/app/notifications/metrics.ts';
import { TransientDeliveryError } from '../../../src/app/notifications/transport.ts';
import type { DomainEventType } from '../../../src/domain/events.ts';
import type { Database } from '../../../src/app/ports/database.ts';
import { createEventStore } from '../../../src/infra/eventStore.ts';
import { silentLogger } from '../../../src/infra/logger.ts';
import { createMailer } from '../../../src/infra/notify/mail.ts';
import type { Mailer } from '../../../src/infra/notify/mail.ts';
import { createTelegramClient } from '../../../src/infra/notify/telegram.ts';
import { pino } from 'pino';
import { postgresDatabase } from '../../../src/infra/db/postgres.ts';
import { DATABASE_URL, migratedPglite, scratchPostgres } from '../../helpers/databases.ts';
import { aCatalogueEvent, aMessage } from '../../helpers/messages.ts';
import { startBotApiFront, startMailSink, startTelegramEmulator } from '../../helpers/notifyPeers.ts';
import type { BotApiFront, MailSink, TelegramEmulator } from '../../helpers/notifyPeers.ts';
import { deliverUntilHandled } from '../../helpers/redeliver.ts';
import { testClock } from '../../helpers/saga.ts';
import { startTcpProxy } from '../../helpers/tcpProxy.ts';
import { eventually } from '../../helpers/wait.ts';
import { notifierPorts } from '../../../src/wiring.ts';
import { createUserChannelStore } from '../../../src/infra/notify/userChannels.ts';

const TOKEN = '123456:notifier-test';
const FROM = 'market-order-saga <noreply@example.test>';

/** A line the notifier logged, as pino writes it. */
interface LogLine {
  readonly level: number;
  readonly msg: string;
}

interface NotificationRow {
  channel: string;
  status: string;
  recipient: string | null;
  text: string;
  error: string | null;
  attempts: number;
}

/**
 * The notifier against real peers: the telegram-test-api Bot API emulator (behind a small front
 * that can answer 429 or 400 on cue) and an smtp-server that keeps every mail. `open` gives each
 * notifier instance its database: the same PGlite, or a pool of its own on PostgreSQL, as
 * separate processes would have. With `processesOn` (the database URL; PostgreSQL only: PGlite is one
 * process's), notifiers also run in processes of their own.
 */
function notifierSuite(open: () => Promise<Database>, options: { processesOn?: () => Promise<string> } = {}) {
  let dbs: Database[] = [];
  let emulator: TelegramEmulator;
  let front: BotApiFront;
  let sink: MailSink;
  let mailer: Mailer;
  const clock = testClock();

  beforeAll(async () => {
    dbs = [await open(), await open(), await open()];
    emulator = await startTelegramEmulator();
    front = await startBotApiFront(emulator.apiRoot);
    sink = await startMailSink();
    mailer = createMailer({ smtpUrl: sink.smtpUrl, from: FROM, timeoutMs: 5_000 });
  });
  afterAll(async () => {
    mailer?.close();
    await Promise.all([front?.stop(), emulator?.stop(), sink?.stop()]);
    await Promise.all([...new Set(dbs)].map((db) => db.close()));
  });

  const db = () => dbs[0] as Database;

  function notifier(instance = 0, overrides: Partial<NotifierDeps> = {}): Notifier {
    const on = dbs[instance] as Database;
    return createNotifier({
      ...notifierPorts(on),
      logger: silentLogger,
      telegram: createTelegramClient({ token: TOKEN, apiRoot: front.apiRoot, retryDelayMs: 20 }),
      mail: mailer,
      now: clock.now,
      ...overrides,
    });
  }

  /** A stored order of a fresh user with the given channels, and its terminal message. */
  async function terminalOrder(type: DomainEventType, channels: ChannelChanges) {
    const orderId = randomUUID();
    const accepted = aCatalogueEvent(orderId, 'OrderAccepted');
    await createEventStore(db()).append([
      { aggregate_id: orderId, aggregate_type: 'order', expected_version: 0, events: [accepted] },
    ]);
    const userId = `user-${orderId}`;
    if (Object.keys(channels).length > 0)
      await createChannelsService(createUserChannelStore(db())).update(userId, channels);
    return {
      orderId,
      userId,
      short: orderId.slice(0, 8),
      message: { ...aMessage(type, orderId), version: 2 },
    };
  }

  const freshChat = () => String(randomInt(1, 2 ** 40));
  const freshEmail = () => `trader-${randomUUID()}@example.test`;
  const sentTo = (chatId: string) => emulator.sent(TOKEN).filter((m) => m.chat_id === chatId);

  async function rows(eventId: string): Promise<NotificationRow[]> {
    return db().query<NotificationRow>(
      `SELECT channel, status, recipient, text, error, attempts FROM notifications
       WHERE event_id = $1 ORDER BY channel DESC`,
      [eventId],
    );
  }

  async function processed(eventId: string): Promise<number> {
    const [row] = await db().query<{ n: number }>(
      'SELECT count(*)::int AS n FROM processed_events WHERE event_id = $1 AND processed_by = $2',
      [eventId, NOTIFIER_CONSUMER],
    );
    return row?.n ?? 0;
  }

  describe('when an order completes and its user has Telegram and email', () => {
    it('sends one Telegram message to the chat and one mail to the address, saying what happened', async () => {
      const chat = freshChat();
      const email = freshEmail();
      const { message, short } = await terminalOrder('OrderCompleted', { telegram_chat_id: chat, email });
      const text = `Order ${short} completed: 1000 USDT → 0.01 BTC at 100,000 USDT/BTC`;

      await notifier().handle(message);

      expect(sentTo(chat)).toEqual([{ chat_id: chat, text }]);
      expect(await sink.waitForMails(email, 1)).toEqual([
        { to: [email], from: 'noreply@example.test', subject: `Order ${short} completed`, text },
      ]);
      expect(await rows(message.event_id)).toEqual([
        { channel: 'telegram', status: 'sent', recipient: chat, text, error: null, attempts: 1 },
        { channel: 'email', status: 'sent', recipient: email, text, error: null, attempts: 1 },
      ]);
      expect(await processed(message.event_id)).toBe(1);
    });

    it('sends nothing more when the message is delivered again', async () => {
      const chat = freshChat();
      const email = freshEmail();
      const { message } = await terminalOrder('OrderCompleted', { telegram_chat_id: chat, email });

      await notifier(0).handle(message);
      await notifier(1).handle(message);
      await notifier(2).handle(message);

      expect(sentTo(chat)).toHaveLength(1);
      expect(sink.mailsTo(email)).toHaveLength(1);
      expect(front.arrivals(chat)).toHaveLength(1);
      expect(await processed(message.event_id)).toBe(1);
    });
  });

  describe('when an order fails', () => {
    it('tells the user why, in words', async () => {
      const chat = freshChat();
      const { message, short } = await terminalOrder('OrderFailed', { telegram_chat_id: chat });

      await notifier().handle(message);

      expect(sentTo(chat)).toEqual([
        { chat_id: chat, text: `Order ${short} failed: insufficient liquidity` },
      ]);
    });
  });

  describe('when the same message is delivered 20 times at once to 3 notifiers', () => {
    it('sends one Telegram message and one mail, and records the message once', async () => {
      const chat = freshChat();
      const email = freshEmail();
      const { message } = await terminalOrder('OrderCompleted', { telegram_chat_id: chat, email });
      const notifiers = [notifier(0), notifier(1), notifier(2)];

      const putOff = await Promise.all(
        Array.from({ length: 20 }, (_, i) => deliverUntilHandled(notifiers[i % 3] as Notifier, message)),
      );

      expect(sentTo(chat)).toHaveLength(1);
      expect(await sink.waitForMails(email, 1)).toHaveLength(1);
      expect((await rows(message.event_id)).map((r) => [r.channel, r.status, r.attempts])).toEqual([
        ['telegram', 'sent', 1],
        ['email', 'sent', 1],
      ]);
      expect(await processed(message.event_id)).toBe(1);
      const metrics = notifiers.map((n) => n.metrics());
      expect(metrics.reduce((sum, m) => sum + m.sent, 0)).toBe(2);
      expect(metrics.reduce((sum, m) => sum + m.busy, 0)).toBe(putOff.reduce((a, b) => a + b, 0));
      // Only after the first attempt sent and recorded can the second mail be checked as absent.
      expect(sink.mailsTo(email)).toHaveLength(1);
    });
  });

  const { processesOn } = options;
  if (processesOn)
    describe('when the same message is delivered 21 times at once to 3 processes', () => {
      it('sends one Telegram message and one mail', async () => {
        const chat = freshChat();
        const email = freshEmail();
        const { message } = await terminalOrder('OrderCompleted', { telegram_chat_id: chat, email });
        const env = {
          DATABASE_URL: await processesOn(),
          TELEGRAM_API_ROOT: front.apiRoot,
          TELEGRAM_BOT_TOKEN: TOKEN,
          SMTP_URL: sink.smtpUrl,
          MESSAGE: JSON.stringify(message),
          DELIVERIES: '7',
        };

        const reports = await runNotifierProcesses(3, env);

        expect(front.arrivals(chat)).toHaveLength(1);
        expect(sentTo(chat)).toHaveLength(1);
        expect(await sink.waitForMails(email, 1)).toHaveLength(1);
        expect(reports.reduce((sum, r) => sum + r.sent, 0)).toBe(2);
        expect((await rows(message.event_id)).map((r) => [r.channel, r.status, r.attempts])).toEqual([
          ['telegram', 'sent', 1],
          ['email', 'sent', 1],
        ]);
        expect(await processed(message.event_id)).toBe(1);
        expect(sink.mailsTo(email)).toHaveLength(1);
      });
    });

  describe('when Telegram answers 429 with retry_after', () => {
    it('waits as long as it was told, then sends the message once', async () => {
      const chat = freshChat();
      const { message } = await terminalOrder('OrderCompleted', { telegram_chat_id: chat });
      front.answerNext(chat, {
        status: 429,
        body: {
          ok: false,
          error_code: 429,
          description: 'Too Many Requests: retry after 1',
          parameters: { retry_after: 1 },
        },
      });

      await notifier().handle(message);

      const [first = 0, second = 0] = front.arrivals(chat);
      expect(front.arrivals(chat)).toHaveLength(2);
      expect(second - first).toBeGreaterThanOrEqual(1000);
      expect(sentTo(chat)).toHaveLength(1);
      expect((await rows(message.event_id))[0]).toMatchObject({ status: 'sent', attempts: 1 });
    });
  });

  describe('when Telegram keeps failing beyond the time a send may take', () => {
    it('keeps the notification for a retry and settles the message; the retry sends it once', async () => {
      const chat = freshChat();
      const email = freshEmail();
      const { message } = await terminalOrder('OrderCompleted', { telegram_chat_id: chat, email });
      const impatient = notifier(0, {
        telegram: createTelegramClient({
          token: TOKEN,
          apiRoot: front.apiRoot,
          retryDelayMs: 20,
          timeoutMs: 20,
          maxSendMs: 100,
        }),
      });

      front.answerAll({ status: 502, body: { ok: false, error_code: 502, description: 'Bad Gateway' } });
      try {
        await impatient.handle(message);
      } finally {
        front.answerAll();
      }

      expect(await sink.waitForMails(email, 1)).toHaveLength(1);
      expect(sentTo(chat)).toEqual([]);
      expect(await rows(message.event_id)).toMatchObject([
        {
          channel: 'telegram',
          status: 'sending',
          error: expect.stringContaining('Telegram 502: Bad Gateway') as unknown,
        },
        { channel: 'email', status: 'sent', error: null },
      ]);
      expect(await processed(message.event_id)).toBe(1);
      expect(impatient.metrics()).toMatchObject({ sent: 1, retrying: 1, failed: 0 });

      clock.advance(1_000); // the first retry's backoff
      await notifier(1).retryDue();

      expect(sentTo(chat)).toHaveLength(1);
      expect((await rows(message.event_id))[0]).toMatchObject({ status: 'sent', error: null, attempts: 2 });
      expect(sink.mailsTo(email)).toHaveLength(1);
    });
  });

  describe('when Telegram refuses for good (chat not found)', () => {
    it('records the notification as failed with the reason and does not retry it', async () => {
      const chat = freshChat();
      const email = freshEmail();
      const { message } = await terminalOrder('OrderCompleted', { telegram_chat_id: chat, email });
      front.answerNext(chat, {
        status: 400,
        body: { ok: false, error_code: 400, description: 'Bad Request: chat not found' },
      });
      sink.refuse(email);

      await notifier().handle(message);
      await notifier(1).handle(message);

      expect(front.arrivals(chat)).toHaveLength(1);
      expect(sentTo(chat)).toEqual([]);
      const [telegram, mail] = await rows(message.event_id);
      expect(telegram).toMatchObject({
        status: 'failed',
        error: 'Telegram 400: Bad Request: chat not found',
      });
      expect(mail).toMatchObject({ status: 'failed', error: expect.stringContaining('SMTP 550') as unknown });
      expect(await processed(message.event_id)).toBe(1);
    });
  });

  describe('when the user has no channel', () => {
    it('sends nothing and records both channels as skipped, with why', async () => {
      const { message, short } = await terminalOrder('OrderFailed', {});
      const before = emulator.sent(TOKEN).length;

      await notifier().handle(message);

      expect(emulator.sent(TOKEN)).toHaveLength(before);
      const text = `Order ${short} failed: insufficient liquidity`;
      expect(await rows(message.event_id)).toEqual([
        {
          channel: 'telegram',
          status: 'skipped',
          recipient: null,
          text,
          error: 'the user has no Telegram chat id',
          attempts: 0,
        },
        {
          channel: 'email',
          status: 'skipped',
          recipient: null,
          text,
          error: 'the user has no email address',
          attempts: 0,
        },
      ]);
      expect(await processed(message.event_id)).toBe(1);
    });
  });

  describe('when no transport is configured (the embedded default)', () => {
    it('records the notification as skipped, naming the missing setting', async () => {
      const { message } = await terminalOrder('OrderCompleted', { telegram_chat_id: freshChat() });

      await createNotifier({ ...notifierPorts(db()), logger: silentLogger }).handle(message);

      expect((await rows(message.event_id))[0]).toMatchObject({
        status: 'skipped',
        error: 'Telegram is not configured (TELEGRAM_BOT_TOKEN)',
      });
    });
  });

  describe('when a notifier crashes between the send and its record', () => {
    it('puts other deliveries off while the lease lasts, then the retry loop sends again once: the one duplicate', async () => {
      const chat = freshChat();
      const { message } = await terminalOrder('OrderCompleted', { telegram_chat_id: chat });
      const crashing = notifier(0, {
        afterSend: () => {
          throw new Error('crash after send');
        },
      });
      await expect(crashing.handle(message)).rejects.toThrow('crash after send');
      expect(sentTo(chat)).toHaveLength(1);

      const survivor = notifier(1);
      await expect(survivor.handle(message)).rejects.toBeInstanceOf(RetryLaterError);
      expect(await processed(message.event_id)).toBe(0);

      clock.advance(DEFAULT_LEASE_MS);
      await survivor.handle(message);
      expect(sentTo(chat), 'a delivery makes only the first attempt').toHaveLength(1);
      await survivor.retryDue();

      expect(sentTo(chat)).toHaveLength(2);
      expect((await rows(message.event_id))[0]).toMatchObject({ status: 'sent', attempts: 2 });
      expect(survivor.metrics()).toMatchObject({ sent: 1, busy: 1, reclaimed: 1, leaseLost: 0 });
      expect(await processed(message.event_id)).toBe(1);
    });
  });

  describe('when the notifier holding a notification stalls and its lease expires', () => {
    it('has the retry loop send it once, and the stalled send changes nothing when it ends', async () => {
      const chat = freshChat();
      const { message } = await terminalOrder('OrderCompleted', { telegram_chat_id: chat });
      // The holder's provider call never answers (a hung process; a crashed one is the same to the
      // others): a transport that settles only when the test says.
      let endStalledSend: ((error: Error) => void) | undefined;
      const stalled = notifier(0, {
        telegram: { send: () => new Promise<void>((_, reject) => (endStalledSend = reject)) },
      });
      const stalling = stalled.handle(message);
      await eventually(() => endStalledSend !== undefined, 'the holder sending');
      const survivor = notifier(1);

      await survivor.retryDue();
      expect(sentTo(chat), 'nothing taken over while the lease lasts').toEqual([]);
      clock.advance(DEFAULT_LEASE_MS);
      await survivor.retryDue();

      expect(sentTo(chat)).toHaveLength(1);
      expect((await rows(message.event_id))[0]).toMatchObject({ status: 'sent', attempts: 2 });

      endStalledSend?.(new TransientDeliveryError('Telegram did not answer within 120000 ms'));
      await stalling;
      expect(sentTo(chat)).toHaveLength(1);
      expect((await rows(message.event_id))[0]).toMatchObject({ status: 'sent', attempts: 2, error: null });
      expect(await processed(message.event_id)).toBe(1);
    });
  });

  describe('when the Bot API refuses the bot token (401) for every message', () => {
    it('says so once, loudly, keeps every notification, and sends each once the token is fixed', async () => {
      const logs: LogLine[] = [];
      const logger = pino(
        { level: 'debug' },
        { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) },
      );
      const orders = await Promise.all(
        Array.from({ length: 5 }, async () => {
          const chat = freshChat();
          const email = freshEmail();
          return {
            chat,
            email,
            ...(await terminalOrder('OrderCompleted', { telegram_chat_id: chat, email })),
          };
        }),
      );
      const misconfigured = notifier(0, { logger });
      front.answerAll({ status: 401, body: { ok: false, error_code: 401, description: 'Unauthorized' } });
      try {
        for (const { message } of orders) await misconfigured.handle(message);
        clock.advance(1_000);
        await misconfigured.retryDue();
      } finally {
        front.answerAll();
      }

      const errors = logs.filter((line) => line.level >= 50);
      expect(errors.map((line) => line.msg)).toEqual([
        expect.stringMatching(
          /^Telegram refuses this service's configuration \(Telegram 401: Unauthorized\): check TELEGRAM_BOT_TOKEN/,
        ),
      ]);
      const asked = orders.reduce((n, { chat }) => n + front.arrivals(chat).length, 0);
      expect(asked, 'Bot API requests for 5 messages').toBeLessThanOrEqual(2);
      for (const { message, email, chat } of orders) {
        expect(await sink.waitForMails(email, 1)).toHaveLength(1);
        expect(sentTo(chat)).toEqual([]);
        expect((await rows(message.event_id))[0]).toMatchObject({
          status: 'sending',
          error: 'Telegram 401: Unauthorized',
        });
        expect(await processed(message.event_id)).toBe(1);
      }

      clock.advance(60_000);
      await notifier(1).retryDue();

      for (const { message, chat } of orders) {
        expect(sentTo(chat)).toHaveLength(1);
        expect((await rows(message.event_id))[0]).toMatchObject({ status: 'sent', error: null });
      }
    });
  });

  describe('when Telegram stays unreachable past the retry horizon', () => {
    it('records the notification failed with the last error, while the email went out at once', async () => {
      const chat = freshChat();
      const email = freshEmail();
      const { message } = await terminalOrder('OrderCompleted', { telegram_chat_id: chat, email });
      // Telegram's address takes connections and drops them at once, as a host with nothing behind it.
      const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(front.apiRoot).port) });
      proxy.cut();
      try {
        const unreachable = notifier(0, {
          telegram: createTelegramClient({
            token: TOKEN,
            apiRoot: `http://127.0.0.1:${proxy.port}`,
            retryDelayMs: 10,
            maxSendMs: 50,
          }),
          retryForMs: 600_000,
        });

        await unreachable.handle(message);
        expect(await sink.waitForMails(email, 1)).toHaveLength(1);
        clock.advance(300_000);
        await unreachable.retryDue();
        expect((await rows(message.event_id))[0]).toMatchObject({ status: 'sending', attempts: 2 });
        clock.advance(300_000);
        await unreachable.retryDue();

        const [telegram] = await rows(message.event_id);
        expect(telegram).toMatchObject({ status: 'failed', attempts: 2 });
        expect(telegram?.error).toMatch(/^not delivered within 10 min; last error: Telegram unreachable: /);
        expect(unreachable.metrics()).toMatchObject({ gaveUp: 1, failed: 1, sent: 1 });
        expect(front.arrivals(chat)).toEqual([]);
        expect(await processed(message.event_id)).toBe(1);
      } finally {
        await proxy.close();
      }
    });
  });

  describe('the duplicate window', () => {
    it('is measured from each send to its record, and stays short', async () => {
      const measured = notifier(2);
      const orders = await Promise.all(
        Array.from({ length: 30 }, () => terminalOrder('OrderCompleted', { telegram_chat_id: freshChat() })),
      );

      for (const { message } of orders) await measured.handle(message);

      const { duplicateWindow, recordLag } = measured.metrics();
      expect(duplicateWindow.count).toBe(30);
      expect(duplicateWindow.buckets['+Inf']).toBe(30);
      expect(recordLag.count).toBe(30);
      expect(recordLag.maxMs).toBeLessThanOrEqual(duplicateWindow.maxMs);
      expect(duplicateWindow.maxMs).toBeLessThan(1000);
      const summary = (h: DurationHistogram) =>
        `mean ${(h.sumMs / h.count).toFixed(1)} ms, max ${h.maxMs.toFixed(1)} ms, buckets ${JSON.stringify(h.buckets)}`;
      console.info(
        `notifier on ${db().kind}, ${duplicateWindow.count} sends: send start → record ${summary(duplicateWindow)}; ` +
          `send answered → record ${summary(recordLag)}`,
      );
    });
  });
}

const PROCESS_SCRIPT = fileURLToPath(new URL('../../helpers/notifierProcess.ts', import.meta.url));

/**
 * Starts `count` notifier processes (test/helpers/notifierProcess.ts), lets them all go at once
 * when every one is ready, and answers their metrics.
 */
async function runNotifierProcesses(count: number, env: Record<string, string>): Promise<NotifierMetrics[]> {
  const children = Array.from({ length: count }, () =>
    spawn(process.execPath, ['--import', 'tsx', PROCESS_SCRIPT], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const lines = children.map((child) => createInterface({ input: child.stdout })[Symbol.asyncIterator]());
  const next = async (i: number) => String((await lines[i]?.next())?.value);
  expect(await Promise.all(children.map((_, i) => next(i)))).toEqual(children.map(() => 'ready'));
  for (const child of children) child.stdin.write('go\n');
  const reports = await Promise.all(
    children.map(async (_, i) => JSON.parse(await next(i)) as NotifierMetrics),
  );
  await Promise.all(children.map(async (child) => (child.exitCode === null ? once(child, 'exit') : [])));
  return reports;
}

describe('the notifier on PGlite', () => {
  let shared: Promise<Database> | undefined;
  notifierSuite(() => (shared ??= migratedPglite()));
});

describe.runIf(DATABASE_URL)(
  'the notifier on PostgreSQL (a pool per notifier, and notifiers in processes of their own)',
  () => {
    // A database of its own: a retry loop claims every due notification it can see, and so would
    // the services of other test files on a shared one.
    let scratch: ReturnType<typeof scratchPostgres> | undefined;
    const url = async () => (await (scratch ??= scratchPostgres({ max: 1 }))).url;
    afterAll(async () => (await scratch)?.drop());
    notifierSuite(async () => postgresDatabase(await url(), { max: 4 }), { processesOn: url });
  },
);
