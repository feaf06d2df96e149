/**
 * An outbox row as a bus claims it: the message as written, not validated yet (the bus validates
 * it for each consumer: deliveryPolicy.ts `admit`), plus the row id it marks afterwards.
 */
export interface OutboxRow {
  readonly id: string;
  readonly event_id: string;
  readonly aggregate_id: string;
  readonly aggregate_type: string;
  readonly event_type: string;
  readonly version: number;
  readonly event_data: unknown;
  readonly metadata: unknown;
}
