import { InvalidMessageError, parseEventMessage } from '../../app/messageSchema.ts';
import { PoisonMessageError, RetryLaterError } from '../../app/messages.ts';
import type { Consumer, EventMessage } from '../../app/messages.ts';
import { isDatabaseUnavailable } from '../db/port.ts';

/**
 * The delivery contract of ../../app/messages.ts as decisions both buses take the same way: the
 * in-process bus and the RabbitMQ consumer differ in how they carry out a verdict (a table row or
 * a dead-letter queue, a timer or a nack), never in the verdict.
 */

/** Why a message was dead-lettered; stored with it (`dead_letters.reason`, `x-dead-letter-reason`). */
export type DeadLetterReason =
  /** Malformed JSON, a failed schema, an event type outside the catalogue or not the consumer's. */
  | 'invalid-message'
  /** The handler threw PoisonMessageError: it can never handle this message. */
  | 'poison'
  /** Transient failures on every delivery up to the delivery limit; the error is the last one. */
  | 'delivery-limit';

export type FailureVerdict =
  | { readonly action: 'dead-letter'; readonly reason: DeadLetterReason; readonly error: string }
  /** RetryLaterError or an unreachable database: deliver again after a backoff, not counted against the limit. */
  | { readonly action: 'retry-later' }
  /** A transient failure below the limit: deliver again after a backoff. */
  | { readonly action: 'retry' };

/** Same default as the broker's queues (topology.ts), so both buses give up at the same point. */
export { DEFAULT_DELIVERY_LIMIT } from './rabbit/topology.ts';

/** The error's message, with its name when that says more (e.g. `SagaSuspendedError: ...`). */
export function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.name && error.name !== 'Error' ? `${error.name}: ${error.message}` : error.message;
}

/**
 * What to do with a message whose delivery failed with `error`.
 *
 * @param attempt this delivery's number, 1 for the first (transient failures only count)
 * @param limit deliveries after which a transient failure dead-letters the message
 */
export function failureVerdict(error: unknown, attempt: number, limit: number): FailureVerdict {
  if (error instanceof InvalidMessageError)
    return { action: 'dead-letter', reason: 'invalid-message', error: errorText(error) };
  if (error instanceof PoisonMessageError)
    return { action: 'dead-letter', reason: 'poison', error: errorText(error) };
  // The database being unreachable says nothing about the message: wait for it, however long.
  if (error instanceof RetryLaterError || isDatabaseUnavailable(error)) return { action: 'retry-later' };
  if (attempt >= limit) return { action: 'dead-letter', reason: 'delivery-limit', error: errorText(error) };
  return { action: 'retry' };
}

/**
 * Validates a message for a consumer before its handler sees it.
 *
 * @throws InvalidMessageError when the message fails the schema or is of a type the consumer
 *   does not take (a binding or routing mistake: it would fail the same way every time).
 */
export function admit(consumer: Consumer, raw: unknown): EventMessage {
  const message = parseEventMessage(raw);
  if (!consumer.eventTypes.includes(message.event_type)) {
    throw new InvalidMessageError(message.event_id, [
      { field: 'event_type', message: `${message.event_type} is not taken by consumer ${consumer.name}` },
    ]);
  }
  return message;
}

/** Exponential backoff: `minMs` for the first retry, doubling up to `maxMs`. */
export function backoffDelay(retry: number, minMs: number, maxMs: number): number {
  return Math.min(maxMs, minMs * 2 ** Math.max(0, retry - 1));
}
