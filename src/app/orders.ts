import { AppError, NotFoundError } from '../domain/errors.ts';
import { uuidV5 } from '../domain/ids.ts';
import { ORDER_EVENT_TYPES } from '../domain/events.ts';
import type { DomainEvent, OrderEvent } from '../domain/events.ts';
import { decideOrder, foldOrder, initialOrderState } from '../domain/order.ts';
import type { OrderState } from '../domain/order.ts';
import { ConcurrencyError } from './ports/eventStore.ts';
import { domainEvent, newEvent } from './envelopes.ts';
import type { EventEnvelope } from './envelopes.ts';
import type { EventStore, NewEvent, StoredEvent } from './ports/eventStore.ts';
import { CURRENT_SAGA_VERSION } from '../machines/registry.ts';
import { decideAndAppend } from './decideAndAppend.ts';

export const SCHEMA_VERSION = 1;

/** An order request that has passed validation; amounts are canonical decimal strings. */
export interface PlaceOrder {
  readonly user_id: string;
  readonly from_amount: string;
  readonly from_currency: string;
  readonly to_currency: string;
  readonly order_type: 'market';
}

/** Namespace of order ids derived from (user, Idempotency-Key). Fixed forever. */
export const ORDER_ID_NAMESPACE = '5b0c1f0e-2c55-4d8e-9a43-7f3a8e2d6b11';

/** The same Idempotency-Key was used before by this user for a different order. */
export class IdempotencyKeyReusedError extends AppError {
  readonly code = 'conflict';
  readonly orderId: string;
  constructor(orderId: string) {
    super(
      `This Idempotency-Key was already used for a different order (${orderId}); use a new key for a new order`,
    );
    this.name = 'IdempotencyKeyReusedError';
    this.orderId = orderId;
  }
}

export interface Accepted {
  readonly order_id: string;
  /** True when an earlier request with the same Idempotency-Key had already placed this order. */
  readonly replayed: boolean;
}

const TERMS = ['user_id', 'from_amount', 'from_currency', 'to_currency', 'order_type'] as const;

export interface OrderServiceDeps {
  readonly store: EventStore;
  readonly now: () => Date;
  readonly newId: () => string;
}

export interface OrderService {
  /**
   * Records OrderAccepted (version 1) and its outbox row atomically. The saga starts from the
   * outbox, never from here.
   * With an idempotency key the order id is derived from (user, key): a retry of the same order
   * finds it already placed and gets the same id back instead of placing a second order.
   * @param causationId the request that caused the order (its request id).
   */
  accept(
    order: PlaceOrder,
    options: { causationId: string | null; idempotencyKey?: string },
  ): Promise<Accepted>;
  /** The order's stored events in version order; NotFoundError when there is no such order. */
  history(orderId: string): Promise<StoredEvent[]>;
  /** The order's current state, folded from its events. */
  get(orderId: string): Promise<{ state: OrderState; version: number }>;
}

/** Wraps domain events for the store; the correlation id ties every event of one saga together. */
export function toNewEvents(
  events: readonly DomainEvent[],
  context: { correlationId: string; causationId: string | null; now: string; newId: () => string },
): NewEvent[] {
  return events.map((event) =>
    newEvent(event, {
      event_id: context.newId(),
      metadata: {
        correlation_id: context.correlationId,
        causation_id: context.causationId,
        occurred_at: context.now,
        schema_version: SCHEMA_VERSION,
      },
    }),
  );
}

const isOrderEvent = (event: DomainEvent): event is OrderEvent =>
  (ORDER_EVENT_TYPES as readonly string[]).includes(event.type);

/** An order stream's events, as the domain folds them. */
export function toOrderEvents(stored: readonly EventEnvelope[]): OrderEvent[] {
  return stored.map((envelope) => {
    const event = domainEvent(envelope);
    if (!isOrderEvent(event)) throw new Error(`${event.type} ${envelope.event_id} is in an order stream`);
    return event;
  });
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
    async accept(order, { causationId, idempotencyKey }) {
      const orderId =
        idempotencyKey === undefined
          ? newId()
          : uuidV5(`${order.user_id}\n${idempotencyKey}`, ORDER_ID_NAMESPACE);
      const at = now().toISOString();
      // Attempt 1 assumes a new order (an empty stream); a conflict means the id is taken: with
      // an Idempotency-Key, by this order's earlier request (a retry) or by a client's mistake.
      return decideAndAppend({
        load: (attempt) => (attempt === 1 ? [] : store.load(orderId)),
        async decide(placed): Promise<Accepted> {
          const first = placed[0];
          if (first) {
            const terms = first.event_type === 'OrderAccepted' ? first.event_data : undefined;
            if (terms && TERMS.every((field) => terms[field] === order[field]))
              return { order_id: orderId, replayed: true };
            throw new IdempotencyKeyReusedError(orderId);
          }
          const decided = decideOrder(
            { type: 'AcceptOrder', data: { order_id: orderId, ...order }, now: at },
            initialOrderState,
          );
          const result = await store.append([
            {
              aggregate_id: orderId,
              aggregate_type: 'order',
              expected_version: 0,
              // The saga starts here, so here it records the machine version it runs on to its end.
              events: toNewEvents(decided, { correlationId: orderId, causationId, now: at, newId }).map(
                (event) => ({
                  ...event,
                  metadata: { ...event.metadata, saga_version: CURRENT_SAGA_VERSION },
                }),
              ),
            },
          ]);
          if (result.status !== 'appended')
            throw new Error(`Order id ${orderId} collided with stored events`);
          return { order_id: orderId, replayed: false };
        },
        // Without a key the id is fresh: a conflict is impossible, and not retried if it happens.
        isConflict: (error) => error instanceof ConcurrencyError && idempotencyKey !== undefined,
        attempts: 2,
      });
    },

    history,

    async get(orderId) {
      const events = await history(orderId);
      return { state: foldOrder(toOrderEvents(events)), version: events.length };
    },
  };
}
