import type { Queryable } from '../app/ports/database.ts';
import type { OrderNotification, ReadModels, ViewListQuery } from '../app/ports/readModels.ts';
import type { OrderView, OrderViewStatus, PositionView, PositionViewStatus } from '../app/projections.ts';

/*
 * The read models in SQL (migrations/010_read_models.sql): `orders_view` and `positions_view`.
 * Amounts come back as the NUMERIC's exact text, ids as text, times as ISO-8601.
 */

export const ORDER_VIEW_COLUMNS = `order_id::text AS order_id, user_id, order_type, status,
  from_amount::text AS from_amount, from_currency, to_currency, quoted_price::text AS quoted_price,
  quoted_to_amount::text AS quoted_to_amount, executed_price::text AS executed_price,
  to_amount::text AS to_amount, tx_hash, position_id::text AS position_id, failure_reason, failed_step,
  created_at, updated_at, version`;

export const POSITION_VIEW_COLUMNS = `position_id::text AS position_id, user_id, status, from_currency,
  to_currency, total_from_amount::text AS total_from_amount, total_to_amount::text AS total_to_amount,
  order_ids::text[] AS order_ids, close_reason, created_at, updated_at, version`;

/** A view row as a driver returns it: times as Date (both adapters), the rest as the view's type. */
type Row<View> = {
  readonly [K in keyof View]: K extends 'created_at' | 'updated_at' ? Date | string : View[K];
};

const iso = (time: Date | string): string => (time instanceof Date ? time : new Date(time)).toISOString();

export function toOrderView(row: Row<OrderView>): OrderView {
  return { ...row, created_at: iso(row.created_at), updated_at: iso(row.updated_at) };
}

export function toPositionView(row: Row<PositionView>): PositionView {
  return { ...row, created_at: iso(row.created_at), updated_at: iso(row.updated_at) };
}

/**
 * A user's rows newest first: one statement per combination of filters, so each is planned for
 * the index that serves it ((user_id, created_at, id) or (user_id, status, created_at, id)).
 */
function listSql(table: string, columns: string, id: string, query: ViewListQuery<string>) {
  const params: unknown[] = [query.userId];
  let where = 'user_id = $1';
  if (query.status !== undefined) {
    params.push(query.status);
    where += ` AND status = $${params.length}`;
  }
  if (query.after !== undefined) {
    params.push(query.after.created_at, query.after.id);
    where += ` AND (created_at, ${id}) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`;
  }
  params.push(query.limit);
  const text = `SELECT ${columns} FROM ${table} WHERE ${where}
    ORDER BY created_at DESC, ${id} DESC LIMIT $${params.length}`;
  return { text, params };
}

/** An order's notifications: the index notifications_order serves it (a handful of rows). */
const NOTIFICATIONS_SQL = `SELECT event_id::text AS event_id, channel, status, recipient, text, error, attempts,
  created_at, sent_at FROM notifications WHERE order_id = $1 ORDER BY created_at, channel`;

type NotificationRow = Omit<OrderNotification, 'created_at' | 'sent_at'> & {
  readonly created_at: Date | string;
  readonly sent_at: Date | string | null;
};

/** ReadModels on `orders_view` and `positions_view`, for PostgreSQL and PGlite alike. */
export function createReadModels(db: Queryable): ReadModels {
  return {
    async order(orderId) {
      const [row] = await db.query<Row<OrderView>>(
        `SELECT ${ORDER_VIEW_COLUMNS} FROM orders_view WHERE order_id = $1`,
        [orderId],
      );
      return row && toOrderView(row);
    },
    async position(positionId) {
      const [row] = await db.query<Row<PositionView>>(
        `SELECT ${POSITION_VIEW_COLUMNS} FROM positions_view WHERE position_id = $1`,
        [positionId],
      );
      return row && toPositionView(row);
    },
    async ordersOf(query: ViewListQuery<OrderViewStatus>) {
      const { text, params } = listSql('orders_view', ORDER_VIEW_COLUMNS, 'order_id', query);
      return (await db.query<Row<OrderView>>(text, params)).map(toOrderView);
    },
    async positionsOf(query: ViewListQuery<PositionViewStatus>) {
      const { text, params } = listSql('positions_view', POSITION_VIEW_COLUMNS, 'position_id', query);
      return (await db.query<Row<PositionView>>(text, params)).map(toPositionView);
    },
    async notificationsOf(orderId) {
      const rows = await db.query<NotificationRow>(NOTIFICATIONS_SQL, [orderId]);
      return rows.map((row) => ({
        ...row,
        created_at: iso(row.created_at),
        sent_at: row.sent_at === null ? null : iso(row.sent_at),
      }));
    },
  };
}
