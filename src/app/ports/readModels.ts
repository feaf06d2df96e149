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
}
