import { NotFoundError } from '../domain/errors.ts';
import type { EventStore, StoredEvent } from './ports/eventStore.ts';

/** Reading positions (`GET /positions/:id/events`). */
export interface PositionService {
  /** The position's stored events in version order; NotFoundError when there is no such position. */
  history(positionId: string): Promise<StoredEvent[]>;
}

export function createPositionService(store: EventStore): PositionService {
  return {
    async history(positionId) {
      const events = await store.load(positionId);
      if (events[0]?.aggregate_type !== 'position')
        throw new NotFoundError(`There is no position with id ${positionId}`);
      return events;
    },
  };
}
