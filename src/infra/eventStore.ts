import { AppError } from '../domain/errors.ts';
import type { AggregateType } from '../domain/events.ts';
import { databaseErrorInfo, UNIQUE_VIOLATION } from './db/port.ts';
import type { Database, Queryable } from './db/port.ts';

export interface EventMetadata {
  /** The order id: every event of one saga shares it. */
  readonly correlation_id: string;
  /** The event or request that caused this event. */
  readonly causation_id: string | null;
  readonly occurred_at: string;
  readonly schema_version: number;
  /** On OrderAccepted: the saga machine version the order's saga runs on (absent: version 1). */
  readonly saga_version?: number;
}

/** An event to append; its version is assigned from the stream's expected version. */
export interface NewEvent {
  readonly event_id: string;
  readonly event_type: string;
  readonly event_data: object;
  readonly metadata: EventMetadata;
}

export interface StreamAppend {
  readonly aggregate_id: string;
  readonly aggregate_type: AggregateType;
  /** The version the stream must be at now; 0 for a stream that must not exist yet. */
  readonly expected_version: number;
  /**
   * May be empty: the stream is then only a condition of the append (it must still be at its
   * expected version), e.g. a position is opened only while its order has not moved on.
   */
  readonly events: readonly NewEvent[];
}

/** Commit-safe position in the global stream (see migrations/001_events.sql). */
export interface GlobalPosition {
  readonly transaction_id: string;
  readonly id: string;
}

export const START: GlobalPosition = { transaction_id: '0', id: '0' };

export interface StoredEvent {
  readonly id: string;
  readonly event_id: string;
  readonly aggregate_id: string;
  readonly aggregate_type: AggregateType;
  readonly event_type: string;
  readonly version: number;
  readonly event_data: Record<string, unknown>;
  readonly metadata: EventMetadata;
  readonly created_at: string;
  readonly position: GlobalPosition;
}

export interface AppendOptions {
  /**
   * Event ids in the order they are to be stored (and get their global ids), when events of
   * different streams interleave; by default stream by stream, in the order given.
   */
  readonly sequence?: readonly string[];
  /**
   * A consumer's record that it handled a message (processed_events), written in the same
   * statement as the events: the handler's effects and its inbox row commit together.
   */
  readonly processed?: ProcessedRecord;
}

export interface ProcessedRecord {
  readonly event_id: string;
  readonly aggregate_id: string;
  readonly event_type: string;
  readonly processed_by: string;
}

export type AppendResult =
  | { readonly status: 'appended'; readonly events: readonly StoredEvent[] }
  /** Every event of the append had been stored before; nothing was written again. */
  | { readonly status: 'duplicate'; readonly event_ids: readonly string[] };

/** The stream was not at the expected version; nothing of the append was written. */
export class ConcurrencyError extends AppError {
  readonly code = 'conflict';
  readonly stream: string;
  readonly expected: number;
  readonly actual: number;
  constructor(stream: string, expected: number, actual: number) {
    super(`Wrong expected version: ${expected} (stream: ${stream}, stream version: ${actual})`);
    this.name = 'ConcurrencyError';
    this.stream = stream;
    this.expected = expected;
    this.actual = actual;
  }
}

export interface EventStore {
  /** A stream's events in version order; empty when the stream does not exist. */
  load(aggregateId: string): Promise<StoredEvent[]>;
  /**
   * Several streams' events in the order they were stored (global id), e.g. an order and its
   * position: within one saga each append waits for the previous, so id order is causal order.
   */
  loadStreams(aggregateIds: readonly string[]): Promise<StoredEvent[]>;
  /**
   * Appends to one or more streams in ONE statement, writing each event and its outbox row
   * together: all of it or none of it. Throws ConcurrencyError when a stream is not at its
   * expected version; reports a re-append of stored event ids as `duplicate`.
   */
  append(streams: readonly StreamAppend[], options?: AppendOptions): Promise<AppendResult>;
  /** All events in commit-safe global order, in batches, from after `from`. */
  readAll(options?: {
    readonly from?: GlobalPosition;
    readonly batchSize?: number;
  }): AsyncIterable<StoredEvent[]>;
}

const COLUMNS = `id::text AS id, event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata,
  created_at, transaction_id::text AS transaction_id`;

/*
 * One statement, so one implicit transaction and one round trip. The guard compares every
 * stream's current version with the expected one; if any differs, no row is inserted at all.
 * Two writers that both pass the guard race on UNIQUE (aggregate_id, version): the loser gets a
 * unique violation once the winner commits.
 */
const APPEND_SQL = `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::text::jsonb) AS t(
    ord int, event_id uuid, aggregate_id uuid, aggregate_type text, event_type text,
    version int, event_data jsonb, metadata jsonb)
), expected AS (
  SELECT * FROM jsonb_to_recordset($2::text::jsonb) AS s(aggregate_id uuid, expected int)
), guard AS (
  SELECT bool_and(
    coalesce((SELECT max(e.version) FROM events e WHERE e.aggregate_id = s.aggregate_id), 0) = s.expected
  ) AS ok FROM expected s
), inserted AS (
  INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
  SELECT i.event_id, i.aggregate_id, i.aggregate_type, i.event_type, i.version, i.event_data, i.metadata
  FROM input i CROSS JOIN guard WHERE guard.ok
  ORDER BY i.ord
  RETURNING ${COLUMNS}
), outboxed AS (
  INSERT INTO outbox (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
  SELECT event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata
  FROM inserted ORDER BY id::bigint
), inboxed AS (
  INSERT INTO processed_events (event_id, aggregate_id, event_type, processed_by)
  SELECT r.event_id, r.aggregate_id, r.event_type, r.processed_by
  FROM jsonb_to_recordset($3::text::jsonb) AS r(event_id uuid, aggregate_id uuid, event_type text, processed_by text)
  WHERE EXISTS (SELECT 1 FROM inserted)
  ON CONFLICT (event_id, processed_by) DO NOTHING
)
SELECT * FROM inserted ORDER BY id::bigint`;

type EventRow = Omit<StoredEvent, 'created_at' | 'position'> & { created_at: Date; transaction_id: string };

function toStored(row: EventRow): StoredEvent {
  const { transaction_id, created_at, ...rest } = row;
  return {
    ...rest,
    created_at: created_at.toISOString(),
    position: { transaction_id, id: row.id },
  };
}

export interface EventStoreOptions {
  /** Called after every successful append, e.g. to wake the in-process relay at once. */
  readonly onAppended?: () => void;
}

export function createEventStore(db: Database, options: EventStoreOptions = {}): EventStore {
  async function diagnose(q: Queryable, streams: readonly StreamAppend[]): Promise<AppendResult> {
    const eventIds = streams.flatMap((s) => s.events.map((e) => e.event_id));
    const existing = await q.query<{ event_id: string }>(
      'SELECT event_id FROM events WHERE event_id = ANY($1::uuid[])',
      [eventIds],
    );
    if (existing.length > 0) return { status: 'duplicate', event_ids: existing.map((r) => r.event_id) };
    const versions = await q.query<{ aggregate_id: string; version: number }>(
      `SELECT s.id AS aggregate_id, coalesce((SELECT max(version) FROM events e WHERE e.aggregate_id = s.id), 0) AS version
       FROM unnest($1::uuid[]) AS s(id)`,
      [streams.map((s) => s.aggregate_id)],
    );
    for (const stream of streams) {
      const actual = versions.find((v) => v.aggregate_id === stream.aggregate_id)?.version ?? 0;
      if (actual !== stream.expected_version) {
        throw new ConcurrencyError(stream.aggregate_id, stream.expected_version, actual);
      }
    }
    // A unique violation means a competing writer committed, so its version is visible by now;
    // reaching this line would take that writer's rows vanishing. Still report a conflict.
    const first = streams[0];
    throw new ConcurrencyError(
      first?.aggregate_id ?? '?',
      first?.expected_version ?? 0,
      first?.expected_version ?? 0,
    );
  }

  return {
    async load(aggregateId) {
      const rows = await db.query<EventRow>(
        `SELECT ${COLUMNS} FROM events WHERE aggregate_id = $1 ORDER BY events.version`,
        [aggregateId],
      );
      return rows.map(toStored);
    },

    async loadStreams(aggregateIds) {
      const rows = await db.query<EventRow>(
        `SELECT ${COLUMNS} FROM events WHERE aggregate_id = ANY($1::uuid[]) ORDER BY events.id`,
        [aggregateIds],
      );
      return rows.map(toStored);
    },

    async append(streams, appendOptions = {}) {
      validateAppend(streams);
      const input = streams.flatMap((stream) =>
        stream.events.map((event, i) => ({
          event_id: event.event_id,
          aggregate_id: stream.aggregate_id,
          aggregate_type: stream.aggregate_type,
          event_type: event.event_type,
          version: stream.expected_version + i + 1,
          event_data: event.event_data,
          metadata: event.metadata,
        })),
      );
      const rank = new Map(appendOptions.sequence?.map((id, i) => [id, i]));
      const numbered = input.map((row, i) => ({ ord: rank.get(row.event_id) ?? rank.size + i, ...row }));
      const expected = streams.map((s) => ({ aggregate_id: s.aggregate_id, expected: s.expected_version }));
      let rows: EventRow[];
      try {
        rows = await db.query<EventRow>(APPEND_SQL, [
          JSON.stringify(numbered),
          JSON.stringify(expected),
          JSON.stringify(appendOptions.processed ? [appendOptions.processed] : []),
        ]);
      } catch (error) {
        if (databaseErrorInfo(error)?.code !== UNIQUE_VIOLATION) throw error;
        return diagnose(db, streams);
      }
      if (rows.length === 0) return diagnose(db, streams);
      options.onAppended?.();
      return { status: 'appended', events: rows.map(toStored) };
    },

    async *readAll(options = {}) {
      const batchSize = options.batchSize ?? 1000;
      let from = options.from ?? START;
      for (;;) {
        // Only transactions older than every one still running: nothing can commit behind us.
        // Qualified names: unqualified, ORDER BY would sort by the ::text aliases ("100" < "99").
        const rows = await db.query<EventRow>(
          `SELECT ${COLUMNS} FROM events
           WHERE (events.transaction_id, events.id) > ($1::xid8, $2::bigint)
             AND events.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
           ORDER BY events.transaction_id, events.id
           LIMIT $3`,
          [from.transaction_id, from.id, batchSize],
        );
        if (rows.length === 0) return;
        const batch = rows.map(toStored);
        yield batch;
        from = batch[batch.length - 1]?.position ?? from;
        if (rows.length < batchSize) return;
      }
    },
  };
}

function validateAppend(streams: readonly StreamAppend[]): void {
  if (!streams.some((stream) => stream.events.length > 0)) throw new Error('append needs at least one event');
  const ids = new Set<string>();
  for (const stream of streams) {
    if (!Number.isInteger(stream.expected_version) || stream.expected_version < 0) {
      throw new Error(`append to ${stream.aggregate_id}: expected version must be an integer >= 0`);
    }
    if (ids.has(stream.aggregate_id))
      throw new Error(`stream ${stream.aggregate_id} appears twice in one append`);
    ids.add(stream.aggregate_id);
  }
}
