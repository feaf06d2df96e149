import { AsyncLocalStorage } from 'node:async_hooks';
import { pino } from 'pino';
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

/**
 * Structured JSON logs (pino); `LOG_LEVEL` sets the level, `silent` for tests and benches. Every
 * line logged inside {@link logContext} carries its fields (`request_id` during a request).
 * Lines go to stdout unless `destination` says otherwise (`keys` writes them to stderr so that
 * stdout carries the key alone; tests capture lines with it).
 */
export function createLogger(level: string = 'info', destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'market-order-saga' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    mixin: () => context.getStore() ?? {},
  };
  return destination ? pino(options, destination) : pino(options);
}

export const silentLogger: Logger = pino({ level: 'silent' });
