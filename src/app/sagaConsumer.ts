import type { Database } from '../infra/db/port.ts';
import { alreadyProcessed, markProcessed } from './inbox.ts';
import type { Consumer } from './messages.ts';
import type { SagaRunner } from './sagaRunner.ts';

export const SAGA_CONSUMER = 'saga-orchestrator';

/** The saga could not finish now (the swap's outcome is unknown); deliver the message again later. */
export class SagaSuspendedError extends Error {
  constructor(orderId: string, detail: string) {
    super(`Saga ${orderId} suspended: ${detail}`);
    this.name = 'SagaSuspendedError';
  }
}

/**
 * The orchestrator: starts (or resumes) an order's saga when its OrderAccepted arrives.
 * Idempotent at the three levels of the original design: processed_events (the event), expected
 * versions (the aggregate, inside the runner) and status checks (a finished saga is left alone).
 */
export function sagaConsumer(db: Database, runner: SagaRunner): Consumer {
  return {
    name: SAGA_CONSUMER,
    eventTypes: ['OrderAccepted'],
    async handle(message) {
      if (await alreadyProcessed(db, SAGA_CONSUMER, message.event_id)) return;
      const result = await runner.run(message.aggregate_id);
      if (result.status === 'suspended') throw new SagaSuspendedError(result.orderId, result.detail);
      await markProcessed(db, SAGA_CONSUMER, message);
    },
  };
}
