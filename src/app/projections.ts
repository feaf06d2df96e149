import { assertNever } from '../domain/events.ts';
import { decimal } from '../domain/money.ts';
import type { EventEnvelope } from './envelopes.ts';

/**
 * The read models as a pure fold of the stored events: what `orders_view` and `positions_view`
 * hold (migrations/010_read_models.sql keeps them by a trigger, event by event). The two are
 * written independently on purpose: `rebuild-projections` rebuilds the tables with this fold and
 * `npm run check` (guarantee 6) compares the tables with it, so each checks the other. A change
 * to one is a change to both.
 *
 * Each event applies only to the row at the version before it (an event that creates a row, only
 * when there is none): a row never moves backwards, and an event applied twice changes nothing.
 */

export type OrderViewStatus = 'pending' | 'processing' | 'completed' | 'failed';
export const ORDER_VIEW_STATUSES = [
  'pending',
  'processing',
  'completed',
  'failed',
] as const satisfies readonly OrderViewStatus[];

export type PositionViewStatus = 'open' | 'closed';
export const POSITION_VIEW_STATUSES = ['open', 'closed'] as const satisfies readonly PositionViewStatus[];

/** An order as GET /orders/:id shows it. Amounts and prices are decimal strings; null until known. */
export type OrderView = {
  readonly order_id: string;
  readonly user_id: string;
  readonly order_type: string;
  readonly status: OrderViewStatus;
  readonly from_amount: string;
  readonly from_currency: string;
  readonly to_currency: string;
  readonly quoted_price: string | null;
  readonly quoted_to_amount: string | null;
  readonly executed_price: string | null;
  readonly to_amount: string | null;
  readonly tx_hash: string | null;
  readonly position_id: string | null;
  readonly failure_reason: string | null;
  readonly failed_step: string | null;
  /** When the order's first and last applied events were stored (ISO-8601, milliseconds). */
  readonly created_at: string;
  readonly updated_at: string;
  /** The last applied version of the order's stream. */
  readonly version: number;
};

/** A position as GET /positions/:id shows it. */
export type PositionView = {
  readonly position_id: string;
  readonly user_id: string;
  readonly status: PositionViewStatus;
  readonly from_currency: string;
  readonly to_currency: string;
  readonly total_from_amount: string;
  readonly total_to_amount: string;
  /** The order that opened the position, then each order added to it. */
  readonly order_ids: readonly string[];
  readonly close_reason: string | null;
  readonly created_at: string;
  readonly updated_at: string;
  readonly version: number;
};

/** What the fold reads of a stored event (a StoredEvent is one). */
type Projected<E> = E extends EventEnvelope
  ? Pick<E, 'aggregate_id' | 'version' | 'event_type' | 'event_data'> & { readonly created_at: string }
  : never;
export type ProjectionInput = Projected<EventEnvelope>;

/** Applies one event to an order's row; the row as it was when the event does not apply to it. */
export function projectOrder(row: OrderView | undefined, event: ProjectionInput): OrderView | undefined {
  const at = event.created_at;
  if (event.event_type === 'OrderAccepted') {
    if (row) return row;
    const d = event.event_data;
    return {
      order_id: event.aggregate_id.toLowerCase(),
      user_id: d.user_id,
      order_type: d.order_type,
      status: 'pending',
      from_amount: d.from_amount,
      from_currency: d.from_currency,
      to_currency: d.to_currency,
      quoted_price: null,
      quoted_to_amount: null,
      executed_price: null,
      to_amount: null,
      tx_hash: null,
      position_id: null,
      failure_reason: null,
      failed_step: null,
      created_at: at,
      updated_at: at,
      version: event.version,
    };
  }
  if (!row || event.version !== row.version + 1) return row;
  const moved = { ...row, updated_at: at, version: event.version };
  switch (event.event_type) {
    case 'PriceQuoted':
      return {
        ...moved,
        status: 'processing',
        quoted_price: event.event_data.price,
        quoted_to_amount: event.event_data.to_amount,
      };
    case 'SwapExecuting':
      return { ...moved, status: 'processing', position_id: event.event_data.position_id.toLowerCase() };
    case 'SwapExecuted': {
      const { executed_price, to_amount, tx_hash } = event.event_data;
      return { ...moved, status: 'processing', executed_price, to_amount, tx_hash };
    }
    case 'OrderCompleted': {
      const { executed_price, to_amount, tx_hash, position_id } = event.event_data;
      return {
        ...moved,
        status: 'completed',
        executed_price,
        to_amount,
        tx_hash,
        position_id: position_id.toLowerCase(),
      };
    }
    case 'OrderFailed':
      return {
        ...moved,
        status: 'failed',
        failure_reason: event.event_data.reason,
        failed_step: event.event_data.failed_step,
      };
    case 'PositionCreated':
    case 'PositionUpdated':
    case 'PositionClosed':
      return row;
    default:
      return assertNever(event);
  }
}

/** Applies one event to a position's row; the row as it was when the event does not apply to it. */
export function projectPosition(
  row: PositionView | undefined,
  event: ProjectionInput,
): PositionView | undefined {
  const at = event.created_at;
  if (event.event_type === 'PositionCreated') {
    if (row) return row;
    const d = event.event_data;
    return {
      position_id: event.aggregate_id.toLowerCase(),
      user_id: d.user_id,
      status: 'open',
      from_currency: d.from_currency,
      to_currency: d.to_currency,
      total_from_amount: '0',
      total_to_amount: '0',
      order_ids: [d.order_id.toLowerCase()],
      close_reason: null,
      created_at: at,
      updated_at: at,
      version: event.version,
    };
  }
  if (!row || event.version !== row.version + 1) return row;
  const moved = { ...row, updated_at: at, version: event.version };
  switch (event.event_type) {
    case 'PositionUpdated': {
      const orderId = event.event_data.order_id.toLowerCase();
      return {
        ...moved,
        total_from_amount: event.event_data.total_from_amount,
        total_to_amount: event.event_data.total_to_amount,
        order_ids: row.order_ids.includes(orderId) ? row.order_ids : [...row.order_ids, orderId],
      };
    }
    case 'PositionClosed':
      return { ...moved, status: 'closed', close_reason: event.event_data.reason };
    case 'OrderAccepted':
    case 'PriceQuoted':
    case 'SwapExecuting':
    case 'SwapExecuted':
    case 'OrderCompleted':
    case 'OrderFailed':
      return row;
    default:
      return assertNever(event);
  }
}

/** Which read model an event type feeds. */
export function viewOf(event: Pick<ProjectionInput, 'event_type'>): 'orders' | 'positions' {
  switch (event.event_type) {
    case 'OrderAccepted':
    case 'PriceQuoted':
    case 'SwapExecuting':
    case 'SwapExecuted':
    case 'OrderCompleted':
    case 'OrderFailed':
      return 'orders';
    case 'PositionCreated':
    case 'PositionUpdated':
    case 'PositionClosed':
      return 'positions';
    default:
      return assertNever(event.event_type);
  }
}

/** Rows of both read models, keyed by aggregate id. */
export interface ViewRows {
  readonly orders: Map<string, OrderView>;
  readonly positions: Map<string, PositionView>;
}

/**
 * Folds events into `rows` (changed in place, so a rebuild folds batch after batch into bounded
 * maps). Events of one stream must come in version order; streams may interleave.
 * @param changed told of each row an event changed.
 * @returns how many events did not apply (already applied, or out of order: a gap).
 */
export function foldInto(
  rows: ViewRows,
  events: readonly ProjectionInput[],
  changed?: (view: 'orders' | 'positions', id: string) => void,
): number {
  let skipped = 0;
  for (const event of events) {
    const id = event.aggregate_id.toLowerCase();
    const view = viewOf(event);
    let applied = false;
    if (view === 'orders') {
      const row = rows.orders.get(id);
      const next = projectOrder(row, event);
      if (next && next !== row) {
        rows.orders.set(id, next);
        applied = true;
      }
    } else {
      const row = rows.positions.get(id);
      const next = projectPosition(row, event);
      if (next && next !== row) {
        rows.positions.set(id, next);
        applied = true;
      }
    }
    if (applied) changed?.(view, id);
    else skipped += 1;
  }
  return skipped;
}

/** The read models a replay of `events` gives. */
export function replay(events: readonly ProjectionInput[]): ViewRows {
  const rows: ViewRows = { orders: new Map(), positions: new Map() };
  foldInto(rows, events);
  return rows;
}

const ORDER_AMOUNTS = ['from_amount', 'quoted_price', 'quoted_to_amount', 'executed_price', 'to_amount'];
const POSITION_AMOUNTS = ['total_from_amount', 'total_to_amount'];

function sameValue(amount: boolean, a: unknown, b: unknown): boolean {
  if (amount && typeof a === 'string' && typeof b === 'string') return decimal(a).eq(b);
  if (Array.isArray(a) && Array.isArray(b)) return a.join() === b.join();
  return a === b;
}

/**
 * The fields in which two rows of a read model differ (amounts compared as decimals, so "1.50"
 * equals "1.5"); empty when they are the same.
 */
export function differingFields(
  kind: 'orders' | 'positions',
  expected: Readonly<Record<string, unknown>>,
  actual: Readonly<Record<string, unknown>>,
): string[] {
  const amounts = kind === 'orders' ? ORDER_AMOUNTS : POSITION_AMOUNTS;
  const fields = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  return [...fields].filter((field) => !sameValue(amounts.includes(field), expected[field], actual[field]));
}
