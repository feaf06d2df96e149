import { AsyncLocalStorage } from 'node:async_hooks';
import process from 'node:process';
import { pino } from 'pino';
import { prettyFactory } from 'pino-pretty';
import type { LogContext } from '../app/ports/logger.ts';

export type Logger = pino.Logger;

/** The fields of the work in progress (a request's id), added to every line logged during it. */
const context = new AsyncLocalStorage<Readonly<Record<string, string>>>();

/**
 * Runs `work` with `fields` on every log line it writes: see LogContext. Nested contexts add to
 * the outer one, so a saga run during a request logs both `request_id` and `order_id`.
 */
export const logContext: LogContext = (fields, work) => {
  const outer = context.getStore();
  return context.run(outer ? { ...outer, ...fields } : fields, work);
};

/**
 * Where credentials could ride into a log line: an Authorization header however a request or its
 * headers are logged (pino's req serializer, a fetch Request's headers, a bare headers object).
 * They are replaced, so a key never reaches the logs.
 */
export const REDACTED_PATHS = [
  'authorization',
  'Authorization',
  '*.authorization',
  '*.Authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
  '*.*.headers.authorization',
  '*.*.headers.Authorization',
];

/** `json`: one JSON object a line, for log collectors; `pretty`: coloured lines for a person. */
export type LogFormat = 'pretty' | 'json';

/** Where lines go: a stream (stdout, stderr) or any object that takes a line (tests). */
type Destination = pino.DestinationStream & { readonly isTTY?: boolean };

/**
 * A destination that turns each JSON line into a readable one (pino-pretty's formatter) and writes
 * it at once, in this process: not pino's worker-thread transport, so it works the same on Node and
 * Deno, and no line is lost when a command exits right after logging. Redaction happens in pino,
 * before the line gets here.
 */
function prettyDestination(destination: Destination, colorize: boolean): pino.DestinationStream {
  const prettify = prettyFactory({
    colorize,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service',
  });
  return { write: (line: string) => void destination.write(prettify(line)) };
}

/** What must never reach a log line (see {@link scrubSecrets}). */
export interface LogSecrets {
  /** Exact values: API keys, the Telegram bot token, passwords. Empty strings are ignored. */
  readonly values?: readonly (string | undefined)[];
}

/** `scheme://user:password@` in any URL: the password goes, the rest stays readable. */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:@/"]*):[^\s@/"]+@/gi;
/** A Telegram Bot API path carries the token: `/bot123456:ABC…/sendMessage`. */
const BOT_TOKEN = /\/bot\d+:[\w-]+/g;

/**
 * Removes secrets from a finished log line: every configured secret value, the password of any
 * URL with credentials (DATABASE_URL, AMQP_URL, SMTP_URL, whatever a driver's error quotes), and
 * Telegram bot tokens in API URLs. It runs on the serialized line, so a secret is caught wherever
 * it hides (an error message, a cause, a URL field); field redaction alone misses those.
 */
export function scrubSecrets(line: string, secrets: readonly string[]): string {
  let out = line;
  for (const secret of secrets) if (out.includes(secret)) out = out.replaceAll(secret, '[redacted]');
  if (out.includes('://')) out = out.replace(URL_CREDENTIALS, '$1:[redacted]@');
  if (out.includes('/bot')) out = out.replace(BOT_TOKEN, '/bot[redacted]');
  return out;
}

/** The secret values, JSON-escaped as they appear inside a line (a quote or a backslash in one). */
export function secretList(secrets: LogSecrets | undefined): string[] {
  const values = (secrets?.values ?? []).filter((v): v is string => typeof v === 'string' && v.length >= 4);
  return [...new Set(values.flatMap((v) => [v, JSON.stringify(v).slice(1, -1)]))];
}

export interface LoggerOptions {
  /**
   * Lines go to stdout unless set (the commands other than `start` write them to stderr so that
   * stdout carries their result alone; tests capture lines with it).
   */
  readonly destination?: Destination;
  /**
   * JSON or pretty lines (LOG_FORMAT); by default pretty when the destination is a terminal and
   * JSON otherwise (a file, a pipe, a container's log), colourful unless NO_COLOR is set.
   */
  readonly format?: LogFormat;
  /** Values scrubbed from every line, besides URL passwords and bot tokens. */
  readonly secrets?: LogSecrets;
  /** Adds `trace_id` and `span_id` of the active span to every line (tracing on). */
  readonly traceIds?: () => Readonly<Record<string, string>> | undefined;
}

/**
 * Structured JSON logs (pino); `LOG_LEVEL` sets the level, `silent` for tests and benches. Every
 * line logged inside {@link logContext} carries its fields (`request_id` during a request,
 * `order_id` while a saga step or a delivery about an order runs). No line carries a secret:
 * Authorization headers are redacted by path and every line is scrubbed ({@link scrubSecrets}).
 */
export function createLogger(
  level: string = 'info',
  destinationOrOptions?: Destination | LoggerOptions,
  format?: LogFormat,
): Logger {
  const options: LoggerOptions =
    destinationOrOptions && 'write' in destinationOrOptions
      ? { destination: destinationOrOptions, format }
      : { format, ...destinationOrOptions };
  const secrets = secretList(options.secrets);
  const { traceIds } = options;
  const pinoOptions: pino.LoggerOptions = {
    level,
    base: { service: 'market-order-saga' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    // Always a new object: pino merges the line's own fields into the one the mixin returns, so
    // returning the context itself leaked one line's fields into every later line of the context.
    mixin: traceIds ? () => ({ ...context.getStore(), ...traceIds() }) : () => ({ ...context.getStore() }),
    hooks: { streamWrite: (line) => scrubSecrets(line, secrets) },
  };
  const target: Destination = options.destination ?? process.stdout;
  const tty = target.isTTY === true;
  if ((options.format ?? (tty ? 'pretty' : 'json')) === 'json') {
    return options.destination ? pino(pinoOptions, options.destination) : pino(pinoOptions);
  }
  return pino(pinoOptions, prettyDestination(target, tty && process.env.NO_COLOR === undefined));
}

export const silentLogger: Logger = pino({ level: 'silent' });

/** The password of a URL, as written and decoded; none when it has none or is not a URL. */
function urlPassword(text: string | undefined): string[] {
  if (!text) return [];
  try {
    const { password } = new URL(text);
    return password ? [password, decodeURIComponent(password)] : [];
  } catch {
    return [];
  }
}

/**
 * The secrets the environment configures, to be scrubbed from every log line: API keys' secrets
 * (API_KEYS), the Telegram bot token, the passwords of DATABASE_URL, AMQP_URL and SMTP_URL, and
 * the values of OTEL_EXPORTER_OTLP_(TRACES_)HEADERS (an exporter's credentials).
 */
export function secretsFromEnv(env: Record<string, string | undefined>): LogSecrets {
  const apiKeys = (env.API_KEYS ?? '')
    .split(',')
    .map((entry) => entry.slice(entry.indexOf(':') + 1).trim())
    .filter((secret) => secret.length > 0);
  const headerValues = [env.OTEL_EXPORTER_OTLP_HEADERS, env.OTEL_EXPORTER_OTLP_TRACES_HEADERS].flatMap(
    (list) => (list ?? '').split(',').map((pair) => pair.slice(pair.indexOf('=') + 1).trim()),
  );
  return {
    values: [
      ...apiKeys,
      env.TELEGRAM_BOT_TOKEN,
      ...urlPassword(env.DATABASE_URL),
      ...urlPassword(env.AMQP_URL),
      ...urlPassword(env.SMTP_URL),
      ...headerValues,
    ],
  };
}
