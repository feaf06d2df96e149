import type { Inbox } from './inbox.ts';
import { PoisonMessageError, RetryLaterError } from './messages.ts';
import type { Consumer } from './messages.ts';
import type { SagaRunner } from './sagaRunner.ts';

export const SAGA_CONSUMER = 'saga-orchestrator';

/** The saga could not finish now (the swap's outcome is unknown); deliver the message again later. */
export class SagaSuspendedError extends RetryLaterError {
  constructor(orderId: string, detail: string) {
    super(`Saga ${orderId} suspended: ${detail}`);
    this.name = 'SagaSuspendedError';
  }
}

/**
 * The orchestrator: starts (or resumes) an order's saga when its OrderAccepted arrives.
 * Idempotent at the three levels of the original design:
 * - event: the processed_events row is written in the same statement as the saga's terminal
 *   events, so a redelivered message finds it (and a saga that finished before gets it now);
 * - aggregate: every append carries expected versions (inside the runner);
 * - business: a finished saga is recognised from its events and left alone.
 * No separate "already processed?" query, and no load for a saga that is just accepted: the
 * runner assumes the delivered OrderAccepted is all there is and finds out otherwise from a version
 * conflict on its first append. That saves two round trips per order.
 */
export function sagaConsumer(inbox: Inbox, runner: SagaRunner): Consumer {
  return {
    name: SAGA_CONSUMER,
    eventTypes: ['OrderAccepted'],
    async handle(message, delivery) {
      // The bus delivers only the types above; the check makes the message the typed OrderAccepted.
      if (message.event_type !== 'OrderAccepted')
        throw new PoisonMessageError(
          `The orchestrator does not handle ${message.event_type} (${message.event_id})`,
        );
      const processed = {
        event_id: message.event_id,
        aggregate_id: message.aggregate_id,
        event_type: message.event_type,
        processed_by: SAGA_CONSUMER,
      };
      // A redelivered message most likely belongs to a saga that moved on (or is suspended):
      // load it, rather than assume it is new and ask the price service for nothing.
      const result = await runner.run(message.aggregate_id, {
        processed,
        ...(delivery?.redelivered ? {} : { accepted: message }),
      });
      if (result.status === 'suspended') throw new SagaSuspendedError(result.orderId, result.detail);
      if (result.status === 'not_found')
        throw new PoisonMessageError(`OrderAccepted ${message.event_id} names no stored order`);
      if (!('finishedHere' in result)) await inbox.mark(SAGA_CONSUMER, message);
    },
  };
}
