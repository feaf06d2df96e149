import { DatabaseUnavailableError } from '../../app/ports/database.ts';

/*
 * What the database adapters share: reading a server error's fields, and telling an unreachable
 * database from a refused statement. The port they implement (Database, Queryable) is
 * src/app/ports/database.ts.
 */

/** The fields of a server error that callers branch on, the same on both adapters. */
export interface DatabaseErrorInfo {
  readonly code: string;
  readonly constraint: string | undefined;
}

/**
 * Reads SQLSTATE and constraint name from an error thrown by either driver
 * (postgres.js uses `constraint_name`, PGlite `constraint`).
 */
export function databaseErrorInfo(error: unknown): DatabaseErrorInfo | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  const e = error as { code?: unknown; constraint_name?: unknown; constraint?: unknown };
  if (typeof e.code !== 'string') return undefined;
  const constraint =
    typeof e.constraint_name === 'string'
      ? e.constraint_name
      : typeof e.constraint === 'string'
        ? e.constraint
        : undefined;
  return { code: e.code, constraint };
}

export const UNIQUE_VIOLATION = '23505';

/** Driver and socket codes of a connection that failed or broke (postgres.js, Node). */
const CONNECTION_CODES = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * True when the database could not be reached or went away (not when it refused a statement):
 * the same request may succeed a moment later, so it is retried without limit, never
 * dead-lettered. SQLSTATE class 08 (connection exception), 57P01–57P03 (shutting down, crashed,
 * not accepting connections yet) and 53300 (too many connections) count. An error may carry the
 * driver's as its cause, so causes are looked at too.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  let e = error;
  for (let depth = 0; e !== undefined && depth < 5; depth++) {
    const code = databaseErrorInfo(e)?.code;
    if (
      code !== undefined &&
      (CONNECTION_CODES.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code) || code === '53300')
    )
      return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * The error an adapter raises for a driver's error: DatabaseUnavailableError (with the driver's
 * error as its cause) when the database could not be reached, the error itself otherwise.
 */
export function adapterError(error: unknown): unknown {
  if (error instanceof DatabaseUnavailableError || !isDatabaseUnavailable(error)) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new DatabaseUnavailableError(`The database is unavailable: ${reason}`, { cause: error });
}
