/**
 * What use cases log through: structured fields first, then the message, as pino takes them
 * (src/infra/logger.ts builds the pino logger the process passes in; tests pass a silent one).
 */
export interface Logger {
  error(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  debug(fields: object, message?: string): void;
}

/**
 * Runs `work` so that every line logged while it runs, however deep and across awaits, carries
 * `fields` (e.g. the request id); src/infra/logger.ts implements it with AsyncLocalStorage.
 */
export type LogContext = <T>(fields: Readonly<Record<string, string>>, work: () => T) => T;
