import type { OrderView, OrderViewStatus } from '../projections.ts';
import type { ViewCursor } from './readModels.ts';

/**
 * What the dashboard reads of `orders_view` (src/infra/orderFeed.ts): every user's orders a page
 * at a time, the rows that changed since a moment, and counts by status. Each is one indexed
 * statement, so none of them grows with the number of orders but the counts.
 */

export interface OrderFeedListQuery {
  readonly status?: OrderViewStatus | undefined;
  /** Only this user's orders. */
  readonly userId?: string | undefined;
  readonly limit: number;
  /** Only rows after this one in list order (newest first, by (created_at, order_id)). */
  readonly after?: ViewCursor | undefined;
}

export type OrderCounts = Readonly<Record<OrderViewStatus, number>>;

export interface OrderFeedRows {
  /** Orders of every user (or of `userId`), newest first. */
  list(query: OrderFeedListQuery): Promise<OrderView[]>;
  /**
   * Rows whose updated_at is at or after `since` (ISO-8601; the database's now() when undefined)
   * minus `overlapMs`, oldest change first, at most `limit`; only `userId`'s when given.
   */
  changedSince(query: {
    readonly since: string | undefined;
    readonly overlapMs: number;
    readonly limit: number;
    readonly userId?: string | undefined;
  }): Promise<OrderView[]>;
  /** How many orders are in each status: every user's, or `userId`'s. */
  counts(userId?: string): Promise<OrderCounts>;
  /** The database's clock (ISO-8601): where a new watcher's feed starts. */
  now(): Promise<string>;
}
