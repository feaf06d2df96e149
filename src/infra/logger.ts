import { pino } from 'pino';

export type Logger = pino.Logger;

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
 * Structured JSON logs (pino); `LOG_LEVEL` sets the level, `silent` for tests and benches.
 * Lines go to stdout unless `destination` says otherwise (`keys` writes them to stderr so that
 * stdout carries the key alone).
 */
export function createLogger(level: string = 'info', destination?: pino.DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'market-order-saga' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}

export const silentLogger: Logger = pino({ level: 'silent' });
