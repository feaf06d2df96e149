/**
 * The event catalogue (see ARCHITECTURE.md). Amounts and prices are decimal strings, never floats;
 * times are ISO-8601 strings. These are the payloads stored in `events.event_data`.
 */

export type AggregateType = 'order' | 'position';

/** Reasons a user understands; carried by OrderFailed. */
export type FailureReason =
  | 'insufficient_liquidity'
  | 'price_unavailable'
  | 'slippage_exceeded'
  | 'venue_rejected'
  | 'deadline_exceeded'
  /** An operator cancelled the order (`POST /admin/sagas/:id/cancel`); their reason is the detail. */
  | 'cancelled';

/** The saga step that was running when an order failed. */
export type SagaStep = 'quote_price' | 'open_position' | 'execute_swap' | 'complete_order';

export type OrderAccepted = {
  readonly type: 'OrderAccepted';
  readonly data: {
    readonly order_id: string;
    readonly user_id: string;
    readonly from_amount: string;
    readonly from_currency: string;
    readonly to_currency: string;
    readonly order_type: 'market';
    readonly accepted_at: string;
  };
};

export type PriceQuoted = {
  readonly type: 'PriceQuoted';
  readonly data: {
    /** Units of to_currency per one unit of from_currency. */
    readonly price: string;
    readonly to_amount: string;
    readonly quoted_at: string;
    readonly source: string;
  };
};

export type SwapExecuting = {
  readonly type: 'SwapExecuting';
  readonly data: {
    readonly idempotency_key: string;
    readonly position_id: string;
    readonly started_at: string;
  };
};

export type SwapExecuted = {
  readonly type: 'SwapExecuted';
  readonly data: {
    readonly tx_hash: string;
    readonly to_amount: string;
    readonly executed_price: string;
    readonly executed_at: string;
    /**
     * What the venue did that it should not have (delivered below min_to_amount, more decimals
     * than the currency has): the swap happened, so it is recorded as done, and flagged.
     */
    readonly venue_anomalies?: readonly string[];
  };
};

export type OrderCompleted = {
  readonly type: 'OrderCompleted';
  readonly data: {
    readonly order_id: string;
    readonly position_id: string;
    readonly from_amount: string;
    readonly from_currency: string;
    readonly to_amount: string;
    readonly to_currency: string;
    readonly executed_price: string;
    readonly tx_hash: string;
    readonly completed_at: string;
  };
};

export type OrderFailed = {
  readonly type: 'OrderFailed';
  readonly data: {
    readonly order_id: string;
    readonly reason: FailureReason;
    readonly failed_step: SagaStep;
    /** Human-readable detail for operators; never shown as the reason code. */
    readonly detail?: string;
    readonly failed_at: string;
  };
};

export type OrderEvent =
  OrderAccepted | PriceQuoted | SwapExecuting | SwapExecuted | OrderCompleted | OrderFailed;

export type PositionCreated = {
  readonly type: 'PositionCreated';
  readonly data: {
    readonly position_id: string;
    readonly user_id: string;
    readonly order_id: string;
    readonly from_currency: string;
    readonly to_currency: string;
    readonly created_at: string;
  };
};

export type PositionUpdated = {
  readonly type: 'PositionUpdated';
  readonly data: {
    readonly position_id: string;
    readonly order_id: string;
    /** What this order added to the position. */
    readonly from_amount: string;
    readonly to_amount: string;
    readonly executed_price: string;
    /** Running totals after this order. */
    readonly total_from_amount: string;
    readonly total_to_amount: string;
    readonly updated_at: string;
  };
};

export type PositionClosed = {
  readonly type: 'PositionClosed';
  readonly data: { readonly position_id: string; readonly reason: string; readonly closed_at: string };
};

export type PositionEvent = PositionCreated | PositionUpdated | PositionClosed;

export type DomainEvent = OrderEvent | PositionEvent;
export type DomainEventType = DomainEvent['type'];

export const ORDER_EVENT_TYPES = [
  'OrderAccepted',
  'PriceQuoted',
  'SwapExecuting',
  'SwapExecuted',
  'OrderCompleted',
  'OrderFailed',
] as const satisfies readonly OrderEvent['type'][];

export const POSITION_EVENT_TYPES = [
  'PositionCreated',
  'PositionUpdated',
  'PositionClosed',
] as const satisfies readonly PositionEvent['type'][];

/** Exhaustiveness check for switches over unions: a new member fails to compile. */
export function assertNever(value: never): never {
  throw new Error(`Unhandled case: ${JSON.stringify(value)}`);
}
