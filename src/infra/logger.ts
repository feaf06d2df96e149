import { pino } from 'pino';

export type Logger = pino.Logger;

/** Structured JSON logs (pino); `LOG_LEVEL` sets the level, `silent` for tests and benches. */
export function createLogger(level: string = 'info'): Logger {
  return pino({ level, base: { service: 'market-order-saga' } });
}

export const silentLogger: Logger = pino({ level: 'silent' });
