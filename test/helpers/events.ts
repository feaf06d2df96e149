import type { NewEvent } from '../../src/app/ports/eventStore.ts';
import type { DomainEventType } from '../../src/domain/events.ts';
import { aCatalogueEvent } from './messages.ts';

/**
 * A valid catalogue event for store tests (the store reads back only what the catalogue accepts),
 * with `extra` fields riding along in its data as a newer producer's would.
 */
export function anEvent(
  correlationId: string,
  type: DomainEventType = 'OrderAccepted',
  extra: Readonly<Record<string, string>> = {},
): NewEvent {
  const event = aCatalogueEvent(correlationId, type);
  return { ...event, event_data: { ...event.event_data, ...extra } } as NewEvent;
}
