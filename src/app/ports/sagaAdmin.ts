import type { OrderViewStatus } from '../projections.ts';

/**
 * What the admin API reads of sagas besides their events: the read model's row (`orders_view`)
 * joined with `open_sagas`. src/infra/sagaAdmin.ts implements it in SQL.
 */

/** Where a page of the saga list ends: the list runs most recently updated first. */
export interface SagaCursor {
  /** ISO-8601, milliseconds, as the view stores it. */
  readonly updated_at: string;
  readonly order_id: string;
}

export interface SagaRowQuery {
  /** Only stuck sagas (true), only the others (false), or all. */
  readonly stuck?: boolean | undefined;
  readonly status?: OrderViewStatus | undefined;
  readonly userId?: string | undefined;
  /** At most this many rows. */
  readonly limit: number;
  /** Only rows after this one in list order. */
  readonly after?: SagaCursor | undefined;
  /** An open saga with no event for longer than this is stuck. */
  readonly stuckAfterMs: number;
}

export interface SagaRow {
  readonly order_id: string;
  readonly user_id: string;
  readonly status: OrderViewStatus;
  readonly failure_reason: string | null;
  readonly created_at: string;
  readonly updated_at: string;
  /** Milliseconds since the order's last event, by the database's clock. */
  readonly age_ms: number;
  /** In `open_sagas`: the saga has not ended. */
  readonly open: boolean;
  readonly stuck: boolean;
}

export interface SagaRows {
  list(query: SagaRowQuery): Promise<SagaRow[]>;
  /** The order's row, or undefined when there is none. */
  one(orderId: string, stuckAfterMs: number): Promise<SagaRow | undefined>;
}
