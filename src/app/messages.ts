import type { EventEnvelope } from './envelopes.ts';

/**
 * An event as it travels from the outbox to consumers (in-process or through RabbitMQ): the
 * stored envelope without its storage details (global id, position, recording time), validated
 * by the bus before a consumer sees it (src/app/messageSchema.ts).
 */
export type EventMessage = EventEnvelope;

/**
 * A consumer of events. Delivery is at least once: `handle` may see a message again after a
 * crash or a retry, so it must be idempotent (see `inbox.ts`), and it records the message in
 * `processed_events` in the same transaction as its effects. A message counts as handled when
 * `handle` resolves (the bus acks it then, never before).
 *
 * When `handle` throws, the bus decides by the error:
 * - {@link PoisonMessageError}: the message can never be handled; it goes to the dead letters at
 *   once, with the error as its reason, and is not retried;
 * - {@link RetryLaterError}: the consumer is waiting on something that will come (a swap outcome
 *   the venue cannot tell yet, a notification another process is sending); retried with backoff
 *   for as long as it takes, not counted against the delivery limit;
 * - any other error is transient: retried with backoff up to the delivery limit, then
 *   dead-lettered with the last error.
 * Messages that fail validation never reach `handle`: they are poison.
 */
export interface Consumer {
  /** Stable name; recorded as `processed_by` in processed_events. */
  readonly name: string;
  readonly eventTypes: readonly string[];
  handle(message: EventMessage, delivery?: Delivery): Promise<void>;
}

/** What the bus knows of a delivery. */
export interface Delivery {
  /**
   * The message was delivered before (a retry after a failure or a wait, a redelivery after a
   * lost connection or a restart): what it asked for may well be done or under way.
   */
  readonly redelivered: boolean;
}

/** The message can never be handled (malformed, unknown, names nothing): dead-letter it now. */
export class PoisonMessageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PoisonMessageError';
  }
}

/**
 * The consumer cannot finish yet but will be able to: deliver the message again later, without
 * limit (the limit is for failures, this is waiting).
 */
export class RetryLaterError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetryLaterError';
  }
}
