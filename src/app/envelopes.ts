import type { AggregateType, DomainEvent, DomainEventType } from '../domain/events.ts';

/**
 * Typed envelopes: an event as the store keeps it and the buses carry it, its `event_data` typed
 * by its `event_type`. The union is tagged by `event_type`, so code narrows it as it narrows the
 * domain events (`if (e.event_type === 'OrderAccepted') e.event_data.user_id`). Envelopes become
 * typed in one place, by validation at the boundary (src/app/messageSchema.ts, called by the
 * event store and the buses), never by a cast.
 */

export interface EventMetadata {
  /** The order id: every event of one saga shares it. */
  readonly correlation_id: string;
  /** The event or request that caused this event. */
  readonly causation_id: string | null;
  readonly occurred_at: string;
  readonly schema_version: number;
  /** On OrderAccepted: the saga machine version the order's saga runs on (absent: version 1). */
  readonly saga_version?: number;
  /**
   * W3C trace context of the work that stored the event, when tracing is on: the relay and the
   * consumers continue the order's trace from it (src/app/tracing.ts).
   */
  readonly traceparent?: string;
  readonly tracestate?: string;
}

/** Each event type's data, by type. */
export type EventDataMap = { [E in DomainEvent as E['type']]: E['data'] };

interface EnvelopeFields {
  readonly event_id: string;
  readonly aggregate_id: string;
  readonly aggregate_type: AggregateType;
  readonly version: number;
  readonly metadata: EventMetadata;
}

/**
 * The envelope of an event of type `T` (a union of types gives the union of their envelopes).
 * Written as a mapped type indexed by `T` so that generic code keeps type and data together.
 */
export type EnvelopeOf<T extends DomainEventType> = {
  [K in T]: EnvelopeFields & { readonly event_type: K; readonly event_data: EventDataMap[K] };
}[T];

/** Any event's envelope: the union tagged by `event_type`. */
export type EventEnvelope = EnvelopeOf<DomainEventType>;

/** The domain event of type `T`, as decide/evolve and the saga machine take it. */
export type EventOf<T extends DomainEventType> = {
  [K in T]: { readonly type: K; readonly data: EventDataMap[K] };
}[T];

/** The domain event an envelope carries; the types of the two stay tied together. */
export function domainEvent<T extends DomainEventType>(envelope: EnvelopeOf<T>): EventOf<T> {
  return { type: envelope.event_type, data: envelope.event_data };
}

/**
 * An event to append (EventStore.append): its envelope before the store gives it a stream, a
 * version and a place. Typed like the envelopes, so what the service writes is what it reads.
 */
export type NewEventOf<T extends DomainEventType> = {
  [K in T]: {
    readonly event_id: string;
    readonly event_type: K;
    readonly event_data: EventDataMap[K];
    readonly metadata: EventMetadata;
  };
}[T];

/** A domain event wrapped for the store. */
export function newEvent<T extends DomainEventType>(
  event: EventOf<T>,
  fields: { readonly event_id: string; readonly metadata: EventMetadata },
): NewEventOf<T> {
  return { ...fields, event_type: event.type, event_data: event.data };
}
