import { AsyncLocalStorage } from 'node:async_hooks';
import process from 'node:process';
import { pino } from 'pino';
import { prettyFactory } from 'pino-pretty';
import type { LogContext } from '../app/ports/logger.ts';

export type Logger = pino.Logger;

/** The fields of the work in progress (a request's id), added to every line logged during it. */
const context = new AsyncLocalStorage<Readonly<Record<string, string>>>();

/** Runs `work` with `fields` on every log line it writes: see LogContext. */
export const logContext: LogContext = (fields, work) => context.run(fields, work);

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

/**
 * Structured logs (pino); `LOG_LEVEL` sets the level, `silent` for tests and benches. Every line
 * logged inside {@link logContext} carries its fields (`request_id` during a request).
 * Lines go to stdout unless `destination` says otherwise (the commands other than `start` write
 * them to stderr so that stdout carries their result alone; tests capture lines with it).
 * `format` (LOG_FORMAT) chooses JSON or pretty lines; by default pretty when the destination is a
 * terminal and JSON otherwise (a file, a pipe, a container's log), colourful unless NO_COLOR is set.
 */
export function createLogger(level: string = 'info', destination?: Destination, format?: LogFormat): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'market-order-saga' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    mixin: () => context.getStore() ?? {},
  };
  const target: Destination = destination ?? process.stdout;
  const tty = target.isTTY === true;
  if ((format ?? (tty ? 'pretty' : 'json')) === 'json') {
    return destination ? pino(options, destination) : pino(options);
  }
  return pino(options, prettyDestination(target, tty && process.env.NO_COLOR === undefined));
}

export const silentLogger: Logger = pino({ level: 'silent' });
