import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
// The package's index re-exports the class as a CommonJS `default`, which NodeNext types as the
// module object; the class's own module names it plainly.
import { TelegramServer } from 'telegram-test-api/lib/telegramServer.js';
import { freePort } from './server.ts';

/** A message a bot sent, as the emulator stored it. */
export interface SentTelegram {
  readonly chat_id: string;
  readonly text: string;
}

export interface TelegramEmulator {
  /** The Bot API root to give the client (TELEGRAM_API_ROOT). */
  readonly apiRoot: string;
  /** What the bot with `token` sent, oldest first (the emulator's update history). */
  sent(token: string): SentTelegram[];
  /** Resolves once the bot with `token` has sent `count` messages. */
  waitForSent(token: string, count: number): Promise<SentTelegram[]>;
  stop(): Promise<void>;
}

/**
 * The Bot API emulator of the npm package telegram-test-api, on a free port of 127.0.0.1: a real
 * HTTP peer that stores what bots send (`sendMessage`) and answers like the Bot API.
 */
export async function startTelegramEmulator(
  options: {
    /** How long the emulator keeps a message (s): `sent` forgets older ones. */
    readonly storeTimeoutSeconds?: number;
  } = {},
): Promise<TelegramEmulator> {
  const server = new TelegramServer({
    port: await freePort(),
    host: '127.0.0.1',
    storeTimeout: options.storeTimeoutSeconds ?? 600,
  });
  await server.start();
  // The emulator's update history (what `client.getUpdatesHistory()` fetches over HTTP), read in
  // process. Its types name typegram's, which it does not install: narrowed here by hand.
  const sent = (token: string): SentTelegram[] =>
    server
      .getUpdatesHistory(token)
      .map((update) => (update as { message?: { chat_id?: unknown; text?: unknown } }).message)
      .filter((message) => message?.chat_id !== undefined)
      .map((message) => ({ chat_id: String(message?.chat_id), text: String(message?.text) }));
  return {
    apiRoot: server.config.apiURL,
    sent,
    async waitForSent(token, count) {
      while (sent(token).length < count) await server.waitBotMessage();
      return sent(token);
    },
    stop: async () => {
      await server.stop();
    },
  };
}

/** What the front answers instead of forwarding: a status and a Bot API error body. */
export interface ScriptedAnswer {
  readonly status: number;
  readonly body: { ok: false; error_code: number; description: string; parameters?: { retry_after: number } };
}

export interface BotApiFront {
  readonly apiRoot: string;
  /** Answers the next sendMessage to `chatId` with `answer` instead of forwarding it. */
  answerNext(chatId: string, answer: ScriptedAnswer): void;
  /**
   * Answers every request with `answer` (after the scripted ones) until called without one, as the
   * Bot API does for a revoked token (401) or a wrong API root (404).
   */
  answerAll(answer?: ScriptedAnswer): void;
  /** When each sendMessage reached the front (ms since the epoch), by chat id. */
  arrivals(chatId: string): number[];
  /** Every sendMessage that reached the front, oldest first, with its text and arrival time. */
  received(): readonly (SentTelegram & { readonly at: number })[];
  stop(): Promise<void>;
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function forward(target: URL, req: IncomingMessage, body: Buffer, res: ServerResponse): void {
  const upstream = httpRequest(
    { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => res.writeHead(502).end());
  upstream.end(body);
}

/**
 * A small node:http peer in front of the emulator: telegram-test-api accepts every message, so it
 * can produce neither a 429 with retry_after nor a "chat not found". The front answers the
 * requests the test scripts and forwards everything else unchanged.
 */
export async function startBotApiFront(emulatorRoot: string): Promise<BotApiFront> {
  const target = new URL(emulatorRoot);
  const scripted = new Map<string, ScriptedAnswer[]>();
  const seen = new Map<string, number[]>();
  const received: (SentTelegram & { at: number })[] = [];
  let always: ScriptedAnswer | undefined;
  const server: Server = createServer((req, res) => {
    void readAll(req).then((body) => {
      const message = JSON.parse(body.toString() || '{}') as { chat_id?: unknown; text?: unknown };
      const chatId = String(message.chat_id);
      const at = Date.now();
      seen.set(chatId, [...(seen.get(chatId) ?? []), at]);
      received.push({ chat_id: chatId, text: String(message.text), at });
      const answer = scripted.get(chatId)?.shift() ?? always;
      if (!answer) return forward(target, req, body, res);
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    apiRoot: `http://127.0.0.1:${port}`,
    answerNext(chatId, answer) {
      scripted.set(chatId, [...(scripted.get(chatId) ?? []), answer]);
    },
    answerAll(answer) {
      always = answer;
    },
    arrivals: (chatId) => seen.get(chatId) ?? [],
    received: () => received,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A mail as the SMTP server received it, decoded. */
export interface ReceivedMail {
  readonly to: readonly string[];
  /** The sender's address. */
  readonly from: string;
  readonly subject: string;
  readonly text: string;
}

export interface MailSink {
  /** SMTP_URL for nodemailer. */
  readonly smtpUrl: string;
  /** Mails received for `address`, oldest first. */
  mailsTo(address: string): ReceivedMail[];
  /** Resolves once `address` has received `count` mails. */
  waitForMails(address: string, count: number): Promise<ReceivedMail[]>;
  /** Refuses mail for `address` with a permanent 550, as a server without that mailbox would. */
  refuse(address: string): void;
  stop(): Promise<void>;
}

/** An SMTP server from the smtp-server package on a free port of 127.0.0.1, keeping every mail. */
export async function startMailSink(): Promise<MailSink> {
  const mails: ReceivedMail[] = [];
  const refused = new Set<string>();
  const waiters = new Set<() => void>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo(address, _session, callback) {
      if (!refused.has(address.address)) return callback();
      const error = Object.assign(new Error(`5.1.1 <${address.address}>: no such mailbox`), {
        responseCode: 550,
      });
      callback(error);
    },
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((parsed) => {
          mails.push({
            to: session.envelope.rcptTo.map((r) => r.address),
            from: parsed.from?.value[0]?.address ?? '',
            subject: parsed.subject ?? '',
            text: (parsed.text ?? '').trim(),
          });
          for (const wake of waiters) wake();
          callback();
        })
        .catch((error: Error) => callback(error));
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  const mailsTo = (address: string) => mails.filter((mail) => mail.to.includes(address));
  return {
    smtpUrl: `smtp://127.0.0.1:${port}`,
    mailsTo,
    async waitForMails(address, count) {
      while (mailsTo(address).length < count) {
        await new Promise<void>((resolve) => {
          const wake = () => {
            waiters.delete(wake);
            resolve();
          };
          waiters.add(wake);
        });
      }
      return mailsTo(address);
    },
    refuse: (address) => refused.add(address),
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
