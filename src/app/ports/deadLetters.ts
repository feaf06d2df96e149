/**
 * Dead letters of both buses, for operators (`/admin/dlq`) and the dead-letter alert. The in-process
 * bus records its own in the `dead_letters` table; on RabbitMQ a keeper moves each `<queue>.dead`
 * queue's messages into the same table, so both are listed, replayed and dropped alike.
 * src/infra/deadLetters.ts implements it.
 */

export interface DeadLetter {
  /** The row's id: what replay and drop take. */
  readonly id: string;
  /** The queue (RabbitMQ) or consumer (in-process) that gave up on the message. */
  readonly queue: string;
  readonly event_type: string | null;
  readonly event_id: string;
  /** The order the event belongs to, when it names one. */
  readonly order_id: string | null;
  /** invalid-message | poison | delivery-limit (src/infra/bus/deliveryPolicy.ts), or the broker's. */
  readonly reason: string | null;
  /** The consumer's last error, as text. */
  readonly error: string | null;
  /** ISO-8601. */
  readonly dead_at: string;
  /** Times it was dead-lettered there. */
  readonly deaths: number;
}

export interface DeadLetters {
  /** The newest first, at most `limit`. */
  list(options: { readonly limit: number }): Promise<DeadLetter[]>;
  /** Dead letters kept now, by queue (queues with none are left out). */
  count(): Promise<Record<string, number>>;
  /**
   * Sends the dead letters back to their consumers (all when `ids` is omitted) and removes them:
   * in-process, by marking the event's outbox row unpublished; on RabbitMQ, by publishing the
   * message to its queue and waiting for the broker's confirm before the row is deleted. Unknown
   * ids are skipped. Resolves to how many were sent back.
   */
  replay(ids?: readonly string[]): Promise<number>;
  /** Deletes the dead letters (`all`, or those of `ids`); resolves to how many were deleted. */
  drop(ids: readonly string[] | 'all'): Promise<number>;
}
