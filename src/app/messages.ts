import type { AggregateType } from '../domain/events.ts';
import type { EventMetadata } from '../infra/eventStore.ts';

/** An event as it travels from the outbox to consumers (in-process or through RabbitMQ). */
export interface EventMessage {
  readonly event_id: string;
  readonly aggregate_id: string;
  readonly aggregate_type: AggregateType;
  readonly event_type: string;
  readonly version: number;
  readonly event_data: Record<string, unknown>;
  readonly metadata: EventMetadata;
}

/**
 * A consumer of events. Delivery is at least once: `handle` may see a message again after a
 * crash or a retry, so it must be idempotent (see `inbox.ts`). A message counts as handled when
 * `handle` resolves; when it throws, the message is delivered again later.
 */
export interface Consumer {
  /** Stable name; recorded as `processed_by` in processed_events. */
  readonly name: string;
  readonly eventTypes: readonly string[];
  handle(message: EventMessage): Promise<void>;
}
