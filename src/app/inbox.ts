import type { EventMessage } from './messages.ts';

/**
 * The consumers' inbox (`processed_events`): which messages each consumer has handled.
 * src/infra/inbox.ts implements it; built on a transaction, the record commits with the
 * handler's other effects.
 */
export interface Inbox {
  /** Records that `consumer` handled `message`; a second record of the same pair is a no-op. */
  mark(consumer: string, message: EventMessage): Promise<void>;
}
