import { createTransport } from 'nodemailer';
import {
  ChannelMisconfiguredError,
  PermanentDeliveryError,
  TransientDeliveryError,
} from '../../app/notifications/transport.ts';
import type { NotificationTransport } from '../../app/notifications/transport.ts';

export interface MailOptions {
  /** The SMTP server (SMTP_URL), e.g. smtp://127.0.0.1:2525 or smtps://user:pass@mail.example. */
  readonly smtpUrl: string;
  /** The sender (MAIL_FROM), e.g. `market-order-saga <noreply@example.com>`. */
  readonly from: string;
  /** Longest wait for the connection, the greeting and each reply (default 10 s). */
  readonly timeoutMs?: number;
}

export interface Mailer extends NotificationTransport {
  /** Closes the pooled SMTP connections. */
  close(): void;
}

/** What nodemailer puts on its errors: the SMTP reply code when the server answered. */
function smtpCode(error: unknown): number | undefined {
  const code = (error as { responseCode?: unknown } | null)?.responseCode;
  return typeof code === 'number' ? code : undefined;
}

/**
 * The server refused this service's credentials (nodemailer's EAUTH, or an AUTH reply 530/534/535):
 * every message would be refused alike until SMTP_URL is fixed, so it is the channel's
 * misconfiguration, not the recipient's refusal (kept for a retry, reported once, alerted).
 */
function isAuthFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  const reply = smtpCode(error);
  return code === 'EAUTH' || code === 'ENOAUTH' || reply === 530 || reply === 534 || reply === 535;
}

/**
 * nodemailer reads a connection URL's query as transport options and ignores options passed next
 * to a URL, so the defaults (a small pool, timeouts) go into the query, where SMTP_URL can still
 * override them (e.g. `?pool=false`).
 */
function withDefaults(smtpUrl: string, timeoutMs: number): string {
  const url = new URL(smtpUrl);
  const defaults = {
    pool: 'true',
    maxConnections: '4',
    connectionTimeout: String(timeoutMs),
    greetingTimeout: String(timeoutMs),
    socketTimeout: String(timeoutMs),
  };
  for (const [key, value] of Object.entries(defaults)) {
    if (!url.searchParams.has(key)) url.searchParams.set(key, value);
  }
  return url.toString();
}

/**
 * Email over SMTP with nodemailer, the de-facto SMTP client for Node (pooling, STARTTLS, auth
 * from the URL, timeouts). A 5xx reply (no such mailbox, relaying denied) is a
 * PermanentDeliveryError with the server's words; a 4xx reply or a connection that fails or times
 * out is transient. Like every SMTP send, one that times out after the server accepted the data
 * may be repeated.
 */
export function createMailer(options: MailOptions): Mailer {
  const transport = createTransport(withDefaults(options.smtpUrl, options.timeoutMs ?? 10_000));
  return {
    async send(to, message) {
      try {
        await transport.sendMail({ from: options.from, to, subject: message.subject, text: message.text });
      } catch (error) {
        const code = smtpCode(error);
        const reason = `SMTP ${code ?? 'error'}: ${(error as Error).message}`;
        if (isAuthFailure(error)) throw new ChannelMisconfiguredError(reason, { cause: error });
        if (code !== undefined && code >= 500) throw new PermanentDeliveryError(reason, { cause: error });
        throw new TransientDeliveryError(reason, { cause: error });
      }
    },
    close: () => transport.close(),
  };
}
