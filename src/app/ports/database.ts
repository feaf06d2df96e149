/**
 * The database port: the few operations the service needs, with the same SQL on every adapter.
 * Parameters use `$1, $2, …`; rows come back as plain objects keyed by column name.
 *
 * Use cases do not run SQL themselves: they get narrower ports (an event store, an inbox, …)
 * whose infra adapters take a Database. Two adapters implement it (src/infra/db): postgres.js for
 * a PostgreSQL server and PGlite (Postgres in WASM) through its own API, never through a socket
 * shim (see ARCHITECTURE.md).
 */
export interface Queryable {
  /**
   * Runs one statement with bound parameters.
   * @throws DatabaseUnavailableError when the database could not be reached or went away.
   */
  query<Row = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Subscribes to NOTIFY on a channel; resolves to an unsubscribe function. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/**
 * The database could not be reached or went away (not: it refused a statement). The same request
 * may succeed a moment later, so callers retry it without limit and never dead-letter a message
 * for it; the HTTP API answers 503 with Retry-After. The adapters raise it, with the driver's
 * error as its cause, so nothing outside infra needs to know a driver's error codes.
 */
export class DatabaseUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseUnavailableError';
  }
}
