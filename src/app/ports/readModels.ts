import type { OrderView, OrderViewStatus, PositionView, PositionViewStatus } from '../projections.ts';

/**
 * The read models' queries (`orders_view`, `positions_view`); src/infra/readModels.ts implements
 * them in SQL on PostgreSQL and PGlite alike.
 */

/** Where a page of a list ends: lists run newest first, by (created_at, id) descending. */
export interface ViewCursor {
  /** ISO-8601, milliseconds, as the views store it. */
  readonly created_at: string;
  readonly id: string;
}

export interface ViewListQuery<Status extends string> {
  readonly userId: string;
  readonly status?: Status | undefined;
  /** At most this many rows. */
  readonly limit: number;
  /** Only rows after this one in list order (older, or as old with a smaller id). */
  readonly after?: ViewCursor | undefined;
}

export interface ReadModels {
  /** The order's row; undefined when there is none. */
  order(orderId: string): Promise<OrderView | undefined>;
  position(positionId: string): Promise<PositionView | undefined>;
  /** A user's orders, newest first. */
  ordersOf(query: ViewListQuery<OrderViewStatus>): Promise<OrderView[]>;
  /** A user's positions, newest first. */
  positionsOf(query: ViewListQuery<PositionViewStatus>): Promise<PositionView[]>;
  /** The notifications sent (or being sent, failed, skipped) about an order, oldest first. */
  notificationsOf(orderId: string): Promise<OrderNotification[]>;
}

/**
 * One row of the `notifications` table as a user may see it: one per terminal event and channel.
 * The lease columns stay inside: they are the notifiers' business.
 */
export interface OrderNotification {
  readonly event_id: string;
  readonly channel: 'telegram' | 'email';
  readonly status: 'sending' | 'sent' | 'failed' | 'skipped';
  /** The chat id or email address it went to; null when the user had none for the channel. */
  readonly recipient: string | null;
  readonly text: string;
  /** Why it failed or was skipped; while sending, the last transient error, if any. */
  readonly error: string | null;
  readonly attempts: number;
  readonly created_at: string;
  readonly sent_at: string | null;
}
