import { AppError } from '../../domain/errors.ts';
import type { AggregateType } from '../../domain/events.ts';

/**
 * The event store port: streams of events with expected versions, each event written together
 * with its outbox row. src/infra/eventStore.ts implements it on a Database (PostgreSQL or PGlite).
 */

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
