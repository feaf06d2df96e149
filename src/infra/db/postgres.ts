import postgres from 'postgres';
import type { Database, Queryable } from '../../app/ports/database.ts';
import { adapterError } from './port.ts';

export interface PostgresOptions {
  /** Pool size; defaults to 20 connections. */
  readonly max?: number;
}

type Sql = postgres.Sql | postgres.TransactionSql;

function queryable(sql: Sql): Queryable {
  return {
    async query<Row>(text: string, params: readonly unknown[] = []) {
      try {
        // Named statements: parse and plan once per connection, then only bind and execute.
        const rows = await sql.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true });
        return rows as unknown as Row[];
      } catch (error) {
        throw adapterError(error);
      }
    },
    async exec(script: string) {
      try {
        // Without parameters postgres.js uses the simple protocol, which runs several statements.
        await sql.unsafe(script);
      } catch (error) {
        throw adapterError(error);
      }
    },
  };
}

/**
 * A Database on a PostgreSQL server through postgres.js. A connection that fails or breaks is
 * reported as DatabaseUnavailableError (the driver's error is its cause).
 */
export function postgresDatabase(url: string, options: PostgresOptions = {}): Database {
  const sql = postgres(url, {
    max: options.max ?? 20,
    onnotice: () => {},
    // Seconds before reconnecting after a broken connection. postgres.js grows it 3× per failure,
    // shared by the pool, up to 20 s: a few seconds of outage left the service idle for up to
    // 20 s after the database was back. Cap it at 1 s; a reconnect attempt is cheap.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    // Timestamps and int8 come back as the adapters agree on: Date and string.
    connection: { application_name: 'market-order-saga' },
  });
  return {
    kind: 'postgres',
    ...queryable(sql),
    async transaction(work) {
      try {
        // sql.begin returns the callback's value; its typing wraps arrays, hence the cast.
        return (await sql.begin((tx) => work(queryable(tx)))) as Awaited<ReturnType<typeof work>>;
      } catch (error) {
        throw adapterError(error);
      }
    },
    async listen(channel, onNotify) {
      try {
        const subscription = await sql.listen(channel, onNotify);
        return () => subscription.unlisten();
      } catch (error) {
        throw adapterError(error);
      }
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}
