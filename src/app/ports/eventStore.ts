import { AppError } from '../../domain/errors.ts';
import type { AggregateType, DomainEventType } from '../../domain/events.ts';
import type { EventEnvelope, NewEventOf } from '../envelopes.ts';
import type { RecordedResponse } from './idempotencyKeys.ts';

export type { EventMetadata } from '../envelopes.ts';

/**
 * The event store port: streams of events with expected versions, each event written together
 * with its outbox row. src/infra/eventStore.ts implements it on a Database (PostgreSQL or PGlite).
 */

/** An event to append; its version is assigned from the stream's expected version. */
export type NewEvent = NewEventOf<DomainEventType>;

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

/** Where and when the store recorded an event. */
export interface StorageFields {
  /** Global id: the order in which events were stored. */
  readonly id: string;
  readonly created_at: string;
  readonly position: GlobalPosition;
}

/**
 * An event as stored: its typed envelope (validated when it was read, see src/app/envelopes.ts)
 * and where the store keeps it.
 */
export type StoredEvent = EventEnvelope & StorageFields;

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
  /**
   * Order requests' Idempotency-Keys, claimed in flight before (see ports/idempotencyKeys.ts), one
   * per order stream of the append: each marked done with its response in the same statement as
   * the events, only if they are stored and only with its own order's stream.
   */
  readonly idempotencyKeys?: readonly KeyCompletion[];
}

/**
 * What marks a claimed Idempotency-Key done: the key of the order and the response it got, and
 * the rest of the claim's row, written done as it stands should the row be gone by then (the
 * order is stored: its key must say so).
 */
export interface KeyCompletion {
  readonly user_id: string;
  readonly idempotency_key: string;
  readonly order_id: string;
  readonly response: RecordedResponse;
  /** SHA-256 (hex) of the normalized request, as claimed. */
  readonly fingerprint: string;
  /** The claim's token. */
  readonly claimed_by: string;
  readonly created_at: Date;
  readonly expires_at: Date;
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
  /**
   * A stream's events in version order; empty when the stream does not exist. Every event read
   * is validated against the event catalogue (src/app/messageSchema.ts).
   * @throws InvalidMessageError naming the event and its failing fields when one is not valid.
   */
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
