import { AsyncLocalStorage } from 'node:async_hooks';
import { pino } from 'pino';
import type { LogContext } from '../app/ports/logger.ts';

export type Logger = pino.Logger;

/** The fields of the work in progress (a request's id), added to every line logged during it. */
const context = new AsyncLocalStorage<Readonly<Record<string, string>>>();

/** Runs `work` with `fields` on every log line it writes: see LogContext. */
export const logContext: LogContext = (fields, work) => context.run(fields, work);

/**
 * Structured JSON logs (pino); `LOG_LEVEL` sets the level, `silent` for tests and benches. Every
 * line logged inside {@link logContext} carries its fields (`request_id` during a request).
 * `destination` is stdout unless given (tests capture lines with it).
 */
export function createLogger(level: string = 'info', destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'market-order-saga' },
    mixin: () => context.getStore() ?? {},
  };
  return destination ? pino(options, destination) : pino(options);
}

export const silentLogger: Logger = pino({ level: 'silent' });
