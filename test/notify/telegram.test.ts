import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ChannelMisconfiguredError,
  PermanentDeliveryError,
  TransientDeliveryError,
} from '../../src/app/notifications/transport.ts';
import { createTelegramClient } from '../../src/infra/notify/telegram.ts';
import { startBotApiFront, startTelegramEmulator } from '../helpers/notifyPeers.ts';
import type { BotApiFront, TelegramEmulator } from '../helpers/notifyPeers.ts';

const TOKEN = '42:telegram-client-test';
const message = { subject: 'Order 1 completed', text: 'Order 1 completed: 1000 USDT → 0.01 BTC' };

describe('the Telegram client', () => {
  let emulator: TelegramEmulator;
  let front: BotApiFront;
  let silent: Server;
  let silentRoot: string;

  beforeAll(async () => {
    emulator = await startTelegramEmulator();
    front = await startBotApiFront(emulator.apiRoot);
    // A Bot API server that takes the request and never answers.
    silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentRoot = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    silent?.closeAllConnections();
    await Promise.all([
      front?.stop(),
      emulator?.stop(),
      new Promise((resolve) => (silent ? silent.close(resolve) : resolve(undefined))),
    ]);
  });

  const client = (apiRoot: string, options: { maxSendMs?: number; timeoutMs?: number } = {}) =>
    createTelegramClient({ token: TOKEN, apiRoot: `${apiRoot}/`, retryDelayMs: 10, ...options });

  describe('when the Bot API takes the message', () => {
    it('sends it to the chat with sendMessage', async () => {
      await client(emulator.apiRoot).send('1001', message);
      expect(emulator.sent(TOKEN).filter((m) => m.chat_id === '1001')).toEqual([
        { chat_id: '1001', text: message.text },
      ]);
    });
  });

  describe('when the bot is blocked by the user (403)', () => {
    it("fails for good with Telegram's description, after one request", async () => {
      front.answerNext('1002', {
        status: 403,
        body: { ok: false, error_code: 403, description: 'Forbidden: bot was blocked by the user' },
      });
      const sending = client(front.apiRoot).send('1002', message);
      await expect(sending).rejects.toBeInstanceOf(PermanentDeliveryError);
      await expect(sending).rejects.toThrow('Telegram 403: Forbidden: bot was blocked by the user');
      expect(front.arrivals('1002')).toHaveLength(1);
    });
  });

  describe.each([
    { code: 401, description: 'Unauthorized', chat: '1003', what: 'the token is wrong or revoked' },
    { code: 404, description: 'Not Found', chat: '1006', what: 'the API root is wrong' },
  ])('when $what ($code)', ({ code, description, chat }) => {
    it('fails at once as a configuration error: the bot is misconfigured, not the chat', async () => {
      front.answerNext(chat, { status: code, body: { ok: false, error_code: code, description } });
      const sending = client(front.apiRoot).send(chat, message);
      await expect(sending).rejects.toBeInstanceOf(ChannelMisconfiguredError);
      // Transient for the notification: it is kept and sent once the configuration is fixed.
      await expect(sending).rejects.toBeInstanceOf(TransientDeliveryError);
      await expect(sending).rejects.toThrow(`Telegram ${code}: ${description}`);
      expect(front.arrivals(chat)).toHaveLength(1);
    });
  });

  describe('when retry_after is longer than a send may take', () => {
    it('gives up at once with a transient error instead of waiting', async () => {
      front.answerNext('1004', {
        status: 429,
        body: {
          ok: false,
          error_code: 429,
          description: 'Too Many Requests: retry after 60',
          parameters: { retry_after: 60 },
        },
      });
      const started = Date.now();
      await expect(client(front.apiRoot, { maxSendMs: 5_000 }).send('1004', message)).rejects.toThrow(
        /Telegram 429: Too Many Requests: retry after 60 \(gave up after 1 attempts\)/,
      );
      expect(Date.now() - started).toBeLessThan(1_000);
    });
  });

  describe('when the Bot API does not answer', () => {
    it('times out each request and gives up within the time a send may take', async () => {
      const started = Date.now();
      await expect(
        client(silentRoot, { timeoutMs: 100, maxSendMs: 400 }).send('1005', message),
      ).rejects.toThrow(/Telegram did not answer within \d+ ms/);
      expect(Date.now() - started).toBeLessThan(1_000);
    });
  });
});
