import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import {
  ChannelMisconfiguredError,
  PermanentDeliveryError,
  TransientDeliveryError,
} from '../../app/notifications/transport.ts';
import type { NotificationTransport } from '../../app/notifications/transport.ts';
import type { Logger } from '../logger.ts';

export const DEFAULT_TELEGRAM_API_ROOT = 'https://api.telegram.org';

export interface TelegramOptions {
  /** The bot's token (TELEGRAM_BOT_TOKEN). */
  readonly token: string;
  /** The Bot API server (TELEGRAM_API_ROOT): api.telegram.org, a self-hosted one, an emulator. */
  readonly apiRoot?: string;
  /** Longest wait for one request's answer (default 10 s). */
  readonly timeoutMs?: number;
  /**
   * Longest a send may take in all, retries and waits included (default 60 s), whatever
   * retry_after says: the notifier's lease (2 min by default) must outlast it. A retry is made only
   * when its whole request timeout still fits.
   */
  readonly maxSendMs?: number;
  /** Wait before retrying a 5xx or a lost connection; doubles each time (default 500 ms). */
  readonly retryDelayMs?: number;
  readonly logger?: Logger;
}

/** The Bot API's answer to every method (https://core.telegram.org/bots/api#making-requests). */
interface BotApiResponse {
  readonly ok: boolean;
  readonly error_code?: number;
  readonly description?: string;
  readonly parameters?: { readonly retry_after?: number };
}

/**
 * One attempt's verdict: done, retry after a wait (ms, when the server named one), give up on this
 * message, or give up because the bot itself is misconfigured.
 */
type Attempt =
  | { readonly kind: 'sent' }
  | { readonly kind: 'retry'; readonly afterMs: number | undefined; readonly reason: string }
  | { readonly kind: 'permanent'; readonly reason: string }
  | { readonly kind: 'misconfigured'; readonly reason: string };

/*
 * 401 (token revoked) and 404 (wrong token or API root) say nothing about the chat: the bot is
 * misconfigured and every message would fail the same way until an operator fixes it. Retrying
 * within the send cannot help, and failing each user's notification for good would lose them:
 * ChannelMisconfiguredError, which the notifier keeps for a retry and reports once.
 */
const MISCONFIGURED = new Set([401, 404]);

function verdict(status: number, body: BotApiResponse | undefined): Attempt {
  if (body?.ok === true) return { kind: 'sent' };
  const code = body?.error_code ?? status;
  const reason = `Telegram ${code}: ${body?.description ?? `HTTP ${status}`}`;
  if (MISCONFIGURED.has(code)) return { kind: 'misconfigured', reason };
  if (code === 429 || code >= 500) {
    const retryAfter = body?.parameters?.retry_after;
    return { kind: 'retry', afterMs: retryAfter === undefined ? undefined : retryAfter * 1000, reason };
  }
  return code >= 400 ? { kind: 'permanent', reason } : { kind: 'retry', afterMs: undefined, reason };
}

async function readBody(response: Response): Promise<BotApiResponse | undefined> {
  try {
    return (await response.json()) as BotApiResponse;
  } catch {
    return undefined;
  }
}

/**
 * A Telegram Bot API client that sends text messages (`sendMessage`). Plain fetch, not grammY:
 * one method with a JSON body is all the notifier needs, and what matters is the bound on the
 * TOTAL time a send may take, since the notifier's lease must outlast it. grammY's `Api` retries
 * nothing; its auto-retry plugin (a second package) bounds each wait and the number of attempts,
 * not their sum, and would retry a timed-out request for up to an hour by default.
 *
 * 429 and 5xx are retried, waiting `parameters.retry_after` when given, doubling a short delay
 * otherwise, until the next wait and request would pass `maxSendMs`: then a TransientDeliveryError
 * (the notifier's retry loop takes it from there). 401 and 404 are a ChannelMisconfiguredError at
 * once. Any other 4xx (chat not found, bot blocked by the user, …) is a PermanentDeliveryError
 * carrying Telegram's description. A request that times out may still have been delivered; it is
 * retried like a lost connection, and so is, rarely, a duplicate.
 */
export function createTelegramClient(options: TelegramOptions): NotificationTransport {
  const apiRoot = (options.apiRoot ?? DEFAULT_TELEGRAM_API_ROOT).replace(/\/+$/, '');
  const url = `${apiRoot}/bot${options.token}/sendMessage`;
  const requestTimeoutMs = options.timeoutMs ?? 10_000;
  const maxSendMs = options.maxSendMs ?? 60_000;
  const retryDelayMs = options.retryDelayMs ?? 500;

  async function attempt(chatId: string, text: string, timeoutMs: number): Promise<Attempt> {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ chat_id: chatId, text }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      return verdict(response.status, await readBody(response));
    } catch (error) {
      const reason =
        error instanceof Error && error.name === 'TimeoutError'
          ? `Telegram did not answer within ${timeoutMs} ms`
          : `Telegram unreachable: ${(error as Error).message}`;
      return { kind: 'retry', afterMs: undefined, reason };
    }
  }

  return {
    async send(chatId, message) {
      const deadline = performance.now() + maxSendMs;
      for (let retry = 0; ; retry++) {
        // Only the first request may be cut to the budget: a retry starts only if it can wait its
        // whole timeout, since a request abandoned early may still be delivered, then sent again.
        const timeoutMs = retry === 0 ? Math.min(requestTimeoutMs, maxSendMs) : requestTimeoutMs;
        const result = await attempt(chatId, message.text, Math.max(1, Math.ceil(timeoutMs)));
        if (result.kind === 'sent') return;
        if (result.kind === 'permanent') throw new PermanentDeliveryError(result.reason);
        if (result.kind === 'misconfigured') throw new ChannelMisconfiguredError(result.reason);
        const wait = result.afterMs ?? retryDelayMs * 2 ** retry;
        if (performance.now() + wait + requestTimeoutMs > deadline)
          throw new TransientDeliveryError(`${result.reason} (gave up after ${retry + 1} attempts)`);
        options.logger?.info({ chat_id: chatId, wait_ms: wait, reason: result.reason }, 'Telegram: retrying');
        await delay(wait);
      }
    },
  };
}
