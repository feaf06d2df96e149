import { ConcurrencyError, START } from '../app/ports/eventStore.ts';
import type { EventEnvelope } from '../app/envelopes.ts';
import type {
  AppendResult,
  EventStore,
  KeyCompletion,
  StoredEvent,
  StreamAppend,
} from '../app/ports/eventStore.ts';
import type { Database, Queryable } from '../app/ports/database.ts';
import { parseEventMessage } from '../app/messageSchema.ts';
import type { Logger } from '../app/ports/logger.ts';
import { databaseErrorInfo, UNIQUE_VIOLATION } from './db/port.ts';

export const EVENT_COLUMNS = `id::text AS id, event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata,
  created_at, transaction_id::text AS transaction_id`;

/*
 * One statement, so one implicit transaction and one round trip. The guard compares every
 * stream's current version with the expected one; if any differs, no row is inserted at all.
 * Two writers that both pass the guard race on UNIQUE (aggregate_id, version): the loser gets a
 * unique violation once the winner commits. An inbox row (processed) is written only with the
 * events; so is an order request's Idempotency-Key marked done (the keyed append).
 */
const appendCtes = (outboxFilter: string) => `
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
  RETURNING ${EVENT_COLUMNS}
), outboxed AS (
  INSERT INTO outbox (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
  SELECT event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata
  FROM inserted ${outboxFilter} ORDER BY id::bigint
), inboxed AS (
  INSERT INTO processed_events (event_id, aggregate_id, event_type, processed_by)
  SELECT r.event_id, r.aggregate_id, r.event_type, r.processed_by
  FROM jsonb_to_recordset($3::text::jsonb) AS r(event_id uuid, aggregate_id uuid, event_type text, processed_by text)
  WHERE EXISTS (SELECT 1 FROM inserted)
  ON CONFLICT (event_id, processed_by) DO NOTHING
)`;

const APPEND_RESULT = `SELECT id, event_id, created_at, transaction_id FROM inserted ORDER BY id::bigint`;

/**
 * The append statements of a store whose outbox carries `outboxEventTypes` only (all when
 * undefined). The types are written into the text, so each statement stays one prepared statement.
 */
function appendStatements(outboxEventTypes: readonly string[] | undefined) {
  for (const type of outboxEventTypes ?? [])
    if (!/^[A-Za-z]+$/.test(type)) throw new Error(`Not an event type: ${JSON.stringify(type)}`);
  const filter = outboxEventTypes
    ? `WHERE event_type IN (${outboxEventTypes.map((t) => `'${t}'`).join(', ') || 'NULL'})`
    : '';
  const ctes = appendCtes(filter);
  return {
    append: `${ctes}
${APPEND_RESULT}`,
    /**
     * The append of orders placed with Idempotency-Keys ($4: a list, one per order stream): each
     * key's claim becomes done, with its response, only with its own order's events (joined on the
     * order id), so a batch of orders marks each key with its own stream.
     *
     * An INSERT … ON CONFLICT rather than an UPDATE … FROM the list: the arbiter finds each key by its
     * primary key whatever the planner thinks. The UPDATE's join was planned for the function's
     * default estimate of 100 rows, so on a young table it hashed the list against a sequential scan
     * of idempotency_keys, and that cached plan stayed while the table grew (bench:http: 4.9 ms a
     * batch of 6 after 30 s, most of PostgreSQL's time). A key whose row is gone (swept after its TTL
     * while its request stalled) is written as its claim left it, done: its order is stored. A row
     * another order took over (expired, claimed again) is left alone.
     */
    keyed: `${ctes}, keyed AS (
  INSERT INTO idempotency_keys AS k (user_id, idempotency_key, fingerprint, order_id, state, claimed_by,
      lease_until, response_status, response_body, created_at, expires_at)
  SELECT d.user_id, d.idempotency_key, d.fingerprint, d.order_id, 'done', d.claimed_by,
      NULL, d.status, d.body, d.created_at, d.expires_at
  FROM jsonb_to_recordset($4::text::jsonb) AS d(user_id text, idempotency_key text, fingerprint text,
      order_id uuid, claimed_by uuid, status int, body text, created_at timestamptz, expires_at timestamptz)
  WHERE EXISTS (SELECT 1 FROM inserted i WHERE i.aggregate_id = d.order_id)
  -- Key order, as claims lock them: two statements that share keys never wait on each other crosswise.
  ORDER BY d.user_id, d.idempotency_key
  ON CONFLICT (user_id, idempotency_key) DO UPDATE
  SET state = 'done', lease_until = NULL, response_status = excluded.response_status,
      response_body = excluded.response_body
  WHERE k.order_id = excluded.order_id
)
${APPEND_RESULT}`,
  };
}

/** A row of `events` as read (COLUMNS): its envelope not validated yet. */
export interface EventRow {
  readonly id: string;
  readonly created_at: Date;
  readonly transaction_id: string;
  readonly [envelopeField: string]: unknown;
}

/** What an append reads back of each event it stored: where the store put it. */
interface AppendedRow {
  readonly id: string;
  readonly event_id: string;
  readonly created_at: Date;
  readonly transaction_id: string;
}

/** Validates a row's envelope into the typed event union: the one parse of a stored event. */
export function toStored(row: EventRow): StoredEvent {
  const { id, created_at, transaction_id, ...envelope } = row;
  return {
    ...parseEventMessage(envelope, 'stored event'),
    id,
    created_at: created_at.toISOString(),
    position: { transaction_id, id },
  };
}

export interface EventStoreOptions {
  /** Called after every successful append, e.g. to wake the in-process relay at once. */
  readonly onAppended?: () => void;
  /** Appends and conflicts are logged at debug level. */
  readonly logger?: Logger;
  /**
   * The event types the outbox carries to the bus (default: all). An event no consumer takes
   * still costs an outbox row, its publish, the broker's confirm and the row's update.
   */
  readonly outboxEventTypes?: readonly string[] | undefined;
}

/**
 * The orders an append is about, for its log lines: `order_id` when one (a saga's batch), else
 * `order_ids` (an intake batch of several orders). Every event's correlation id is its order's id.
 */
function ordersOf(streams: readonly StreamAppend[]): { order_id?: string; order_ids?: string[] } {
  const ids = new Set<string>();
  for (const stream of streams) for (const event of stream.events) ids.add(event.metadata.correlation_id);
  const [only] = ids;
  return ids.size === 1 && only !== undefined ? { order_id: only } : { order_ids: [...ids] };
}

export function createEventStore(db: Database, options: EventStoreOptions = {}): EventStore {
  const { logger } = options;
  const sql = appendStatements(options.outboxEventTypes);
  async function diagnose(q: Queryable, streams: readonly StreamAppend[]): Promise<AppendResult> {
    try {
      const result = await whyNotAppended(q, streams);
      logger?.debug(
        { ...ordersOf(streams), streams: streams.map((s) => s.aggregate_id) },
        'append was a duplicate',
      );
      return result;
    } catch (error) {
      logger?.debug({ err: error }, 'append conflict');
      throw error;
    }
  }

  async function whyNotAppended(q: Queryable, streams: readonly StreamAppend[]): Promise<AppendResult> {
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
        `SELECT ${EVENT_COLUMNS} FROM events WHERE aggregate_id = $1 ORDER BY events.version`,
        [aggregateId],
      );
      return rows.map(toStored);
    },

    async loadStreams(aggregateIds) {
      const rows = await db.query<EventRow>(
        `SELECT ${EVENT_COLUMNS} FROM events WHERE aggregate_id = ANY($1::uuid[]) ORDER BY events.id`,
        [aggregateIds],
      );
      return rows.map(toStored);
    },

    async append(streams, appendOptions = {}) {
      validateAppend(streams);
      const input: EventEnvelope[] = streams.flatMap((stream) =>
        stream.events.map((event, i) => ({
          ...event,
          aggregate_id: stream.aggregate_id,
          aggregate_type: stream.aggregate_type,
          version: stream.expected_version + i + 1,
        })),
      );
      const rank = new Map(appendOptions.sequence?.map((id, i) => [id, i]));
      const numbered = input.map((row, i) => ({ ord: rank.get(row.event_id) ?? rank.size + i, ...row }));
      const expected = streams.map((s) => ({ aggregate_id: s.aggregate_id, expected: s.expected_version }));
      let rows: AppendedRow[];
      try {
        const params = [
          JSON.stringify(numbered),
          JSON.stringify(expected),
          JSON.stringify(appendOptions.processed ? [appendOptions.processed] : []),
        ];
        const keys = appendOptions.idempotencyKeys ?? [];
        rows = await (keys.length > 0
          ? db.query<AppendedRow>(sql.keyed, [...params, JSON.stringify(keys.map(keyCompletion))])
          : db.query<AppendedRow>(sql.append, params));
      } catch (error) {
        if (databaseErrorInfo(error)?.code !== UNIQUE_VIOLATION) throw error;
        return diagnose(db, streams);
      }
      if (rows.length === 0) return diagnose(db, streams);
      options.onAppended?.();
      logger?.debug(
        { ...ordersOf(streams), streams: streams.map((s) => s.aggregate_id), events: rows.length },
        'events appended',
      );
      // The events are the typed ones given (NewEvent), placed where the store put them: nothing
      // read back needs parsing.
      const given = new Map(input.map((envelope) => [envelope.event_id.toLowerCase(), envelope]));
      const events = rows.map((row): StoredEvent => {
        const envelope = given.get(row.event_id);
        if (!envelope) throw new Error(`The append stored event ${row.event_id}, which it was not given`);
        const place = { id: row.id, created_at: row.created_at.toISOString() };
        return {
          ...envelope,
          event_id: row.event_id,
          ...place,
          position: { transaction_id: row.transaction_id, id: row.id },
        };
      });
      return { status: 'appended', events };
    },

    async *readAll(options = {}) {
      const batchSize = options.batchSize ?? 1000;
      let from = options.from ?? START;
      for (;;) {
        // Only transactions older than every one still running: nothing can commit behind us.
        // Qualified names: unqualified, ORDER BY would sort by the ::text aliases ("100" < "99").
        const rows = await db.query<EventRow>(
          `SELECT ${EVENT_COLUMNS} FROM events
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

/** A row of the keyed append's $4: an Idempotency-Key row and its response. */
function keyCompletion(key: KeyCompletion) {
  return {
    user_id: key.user_id,
    idempotency_key: key.idempotency_key,
    order_id: key.order_id,
    status: key.response.status,
    body: key.response.body,
    fingerprint: key.fingerprint,
    claimed_by: key.claimed_by,
    created_at: key.created_at.toISOString(),
    expires_at: key.expires_at.toISOString(),
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
