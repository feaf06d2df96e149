import type { StoredEvent } from '../infra/eventStore.ts';

/**
 * An event as it travels from the outbox to consumers (in-process or through RabbitMQ): the
 * stored envelope without its storage details (global id, position, recording time).
 */
export type EventMessage = Omit<StoredEvent, 'id' | 'position' | 'created_at'>;

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
