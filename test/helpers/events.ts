import { randomUUID } from 'node:crypto';
import type { NewEvent } from '../../src/app/ports/eventStore.ts';

/** A well-formed event for store tests; the store does not interpret payloads. */
export function anEvent(correlationId: string, type = 'OrderAccepted', data: object = {}): NewEvent {
  return {
    event_id: randomUUID(),
    event_type: type,
    event_data: { note: 'test', ...data },
    metadata: {
      correlation_id: correlationId,
      causation_id: null,
      occurred_at: '2026-11-24T12:00:00.000Z',
      schema_version: 1,
    },
  };
}
