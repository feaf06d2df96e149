import { parse, protocol } from '@electric-sql/pglite';
import type { PGlite } from '@electric-sql/pglite';

/*
 * Named prepared statements on PGlite. `PGlite.query` parses, describes, plans and describes its
 * statement again at every call, in six protocol exchanges each awaited; with the embedded
 * service's statements (one CTE appends events, outbox and inbox rows) that was about half of
 * the time spent in Postgres per order. Here a statement text is parsed and described once, under
 * a name, and each call sends Bind, Execute and Sync in one batch: PostgreSQL keeps the plan (a
 * generic one once it costs no more than the custom plans, as for any prepared statement) and
 * PGlite enters WASM once. It is what postgres.js does on a server (prepared statements by
 * default).
 */

type BackendMessage = Parameters<typeof parse.parseResults>[0][number];

interface Prepared {
  readonly name: string;
  /** Executions since it was prepared: at REPLAN_EVERY it is prepared again. */
  runs: number;
  /** Type OIDs of the parameters, as PostgreSQL inferred them: they choose each value's serializer. */
  readonly paramTypes: readonly number[];
  /** The statement's RowDescription (none for a statement that returns no rows). */
  readonly rowDescription: BackendMessage | undefined;
}

/**
 * PostgreSQL keeps a prepared statement's generic plan until a table's definition or statistics
 * change, and PGlite runs neither autovacuum nor ANALYZE: a plan chosen while the tables were
 * empty stayed, e.g. marking outbox rows published went from 0.3 to 3.4 ms a call within 4,000
 * orders of a new database. A statement is prepared again every REPLAN_EVERY executions, so its
 * plan follows the tables' sizes (one parse and describe per thousand calls).
 */
const REPLAN_EVERY = 1_000;

/** SQLSTATE of "cached plan must not change result type": a table changed under the statement. */
const CACHED_PLAN_CHANGED = '0A000';

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export interface PreparedQueries {
  /**
   * Runs `text` as a named prepared statement, preparing it at its first use; undefined when the
   * cache is full (the caller then runs it unprepared). Never call it from inside a PGlite
   * transaction: it waits for PGlite's query lock, which the transaction holds.
   */
  query<Row>(text: string, params: readonly unknown[]): Promise<Row[]> | undefined;
}

/**
 * At most `limit` statements are kept (the service has a few dozen texts, all constants): texts
 * past it run unprepared, so SQL built at run time cannot fill the memory with statements.
 */
export function preparedQueries(db: PGlite, limit = 200): PreparedQueries {
  const statements = new Map<string, Prepared>();
  let counter = 0;

  async function prepare(text: string): Promise<Prepared> {
    const name = `s${++counter}`;
    const messages = await db.execProtocolStream(
      concat([
        protocol.serialize.parse({ name, text }),
        protocol.serialize.describe({ type: 'S', name }),
        protocol.serialize.sync(),
      ]),
      { syncToFs: false },
    );
    return {
      name,
      runs: 0,
      paramTypes: parse.parseDescribeStatementResults(messages),
      rowDescription: messages.find((m) => m.name === 'rowDescription'),
    };
  }

  async function run<Row>(statement: Prepared, params: readonly unknown[]): Promise<Row[]> {
    statement.runs += 1;
    const values = params.map((param, i) => {
      if (param === null || param === undefined) return null;
      const serialize = db.serializers[statement.paramTypes[i] ?? 0];
      // PGlite.query's own fallback for a type without a serializer (text, uuid, numbers).
      // eslint-disable-next-line @typescript-eslint/no-base-to-string
      return serialize ? serialize(param) : String(param);
    });
    const messages = await db.execProtocolStream(
      concat([
        protocol.serialize.bind({ statement: statement.name, values }),
        protocol.serialize.execute({}),
        protocol.serialize.sync(),
      ]),
    );
    const described = statement.rowDescription ? [statement.rowDescription, ...messages] : messages;
    return (parse.parseResults(described, db.parsers)[0]?.rows ?? []) as Row[];
  }

  async function forget(text: string, statement: Prepared): Promise<void> {
    statements.delete(text);
    await db.execProtocolStream(
      concat([protocol.serialize.close({ type: 'S', name: statement.name }), protocol.serialize.sync()]),
      { syncToFs: false },
    );
  }

  return {
    query<Row>(text: string, params: readonly unknown[]) {
      if (!statements.has(text) && statements.size >= limit) return undefined;
      return db.runExclusive(async () => {
        let statement = statements.get(text);
        if (statement && statement.runs >= REPLAN_EVERY) {
          await forget(text, statement);
          statement = undefined;
        }
        if (!statement) {
          statement = await prepare(text);
          statements.set(text, statement);
        }
        try {
          return await run<Row>(statement, params);
        } catch (error) {
          if ((error as { code?: unknown }).code !== CACHED_PLAN_CHANGED) throw error;
          // A migration or a rebuild changed a table's columns: prepare the text again, once.
          await forget(text, statement);
          statement = await prepare(text);
          statements.set(text, statement);
          return run<Row>(statement, params);
        }
      });
    },
  };
}
