import { NotFoundError } from '../domain/errors.ts';
import type { OrderEvent } from '../domain/events.ts';
import { decideOrder, foldOrder, initialOrderState } from '../domain/order.ts';
import type { OrderState } from '../domain/order.ts';
import type { EventStore, NewEvent, StoredEvent } from '../infra/eventStore.ts';

export const SCHEMA_VERSION = 1;

/** An order request that has passed validation; amounts are canonical decimal strings. */
export interface PlaceOrder {
  readonly user_id: string;
  readonly from_amount: string;
  readonly from_currency: string;
  readonly to_currency: string;
  readonly order_type: 'market';
}

export interface OrderServiceDeps {
  readonly store: EventStore;
  readonly now: () => Date;
  readonly newId: () => string;
}

export interface OrderService {
  /**
   * Records OrderAccepted (version 1) and its outbox row atomically. The saga starts from the
   * outbox, never from here.
   * @param causationId the request that caused the order (its request id).
   */
  accept(order: PlaceOrder, causationId: string | null): Promise<{ order_id: string; version: number }>;
  /** The order's stored events in version order; NotFoundError when there is no such order. */
  history(orderId: string): Promise<StoredEvent[]>;
  /** The order's current state, folded from its events. */
  get(orderId: string): Promise<{ state: OrderState; version: number }>;
}

/** Wraps domain events for the store; the correlation id ties every event of one saga together. */
export function toNewEvents(
  events: readonly { type: string; data: object }[],
  context: { correlationId: string; causationId: string | null; now: string; newId: () => string },
): NewEvent[] {
  return events.map((event) => ({
    event_id: context.newId(),
    event_type: event.type,
    event_data: event.data,
    metadata: {
      correlation_id: context.correlationId,
      causation_id: context.causationId,
      occurred_at: context.now,
      schema_version: SCHEMA_VERSION,
    },
  }));
}

export function toOrderEvents(stored: readonly StoredEvent[]): OrderEvent[] {
  return stored.map((e) => ({ type: e.event_type, data: e.event_data }) as unknown as OrderEvent);
}

export function createOrderService({ store, now, newId }: OrderServiceDeps): OrderService {
  async function history(orderId: string): Promise<StoredEvent[]> {
    const events = await store.load(orderId);
    if (events.length === 0 || events[0]?.aggregate_type !== 'order') {
      throw new NotFoundError(`There is no order with id ${orderId}`);
    }
    return events;
  }

  return {
    async accept(order, causationId) {
      const orderId = newId();
      const at = now().toISOString();
      const decided = decideOrder(
        { type: 'AcceptOrder', data: { order_id: orderId, ...order }, now: at },
        initialOrderState,
      );
      const result = await store.append([
        {
          aggregate_id: orderId,
          aggregate_type: 'order',
          expected_version: 0,
          events: toNewEvents(decided, { correlationId: orderId, causationId, now: at, newId }),
        },
      ]);
      if (result.status !== 'appended') throw new Error(`Order id ${orderId} collided with stored events`);
      return { order_id: orderId, version: result.events.length };
    },

    history,

    async get(orderId) {
      const events = await history(orderId);
      return { state: foldOrder(toOrderEvents(events)), version: events.length };
    },
  };
}
