import type { Queryable } from '../app/ports/database.ts';
import type { OrderCounts, OrderFeedListQuery, OrderFeedRows } from '../app/ports/orderFeed.ts';
import { ORDER_VIEW_COLUMNS, toOrderView } from './readModels.ts';

/*
 * The dashboard's reads of `orders_view`. The list walks orders_view_by_time or
 * orders_view_by_status_time (migration 015), or the per-user indexes (migration 010) when a user
 * is given; the feed walks orders_view_by_update (migration 013) from a moment on.
 */

type Row = Parameters<typeof toOrderView>[0];

function listSql(query: OrderFeedListQuery) {
  const params: unknown[] = [];
  const where: string[] = [];
  if (query.userId !== undefined) {
    params.push(query.userId);
    where.push(`user_id = $${params.length}`);
  }
  if (query.status !== undefined) {
    params.push(query.status);
    where.push(`status = $${params.length}`);
  }
  if (query.after !== undefined) {
    params.push(query.after.created_at, query.after.id);
    where.push(`(created_at, order_id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
  }
  params.push(query.limit);
  const text = `SELECT ${ORDER_VIEW_COLUMNS} FROM orders_view
    ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
    ORDER BY created_at DESC, order_id DESC LIMIT $${params.length}`;
  return { text, params };
}

export function createOrderFeedRows(db: Queryable): OrderFeedRows {
  return {
    async list(query) {
      const { text, params } = listSql(query);
      return (await db.query<Row>(text, params)).map(toOrderView);
    },
    async changedSince({ since, overlapMs, limit, userId }) {
      const params: unknown[] = [since ?? null, overlapMs, limit];
      let where = `updated_at >= coalesce($1::timestamptz, now()) - $2 * interval '1 millisecond'`;
      if (userId !== undefined) {
        params.push(userId);
        where += ` AND user_id = $${params.length}`;
      }
      const rows = await db.query<Row>(
        `SELECT ${ORDER_VIEW_COLUMNS} FROM orders_view WHERE ${where}
         ORDER BY updated_at, order_id LIMIT $3`,
        params,
      );
      return rows.map(toOrderView);
    },
    async now() {
      const [row] = await db.query<{ now: Date | string }>("SELECT date_trunc('milliseconds', now()) AS now");
      return new Date(row?.now ?? Date.now()).toISOString();
    },
    async counts(userId) {
      const rows = await db.query<{ status: keyof OrderCounts; n: number }>(
        userId === undefined
          ? 'SELECT status, count(*)::int AS n FROM orders_view GROUP BY status'
          : 'SELECT status, count(*)::int AS n FROM orders_view WHERE user_id = $1 GROUP BY status',
        userId === undefined ? [] : [userId],
      );
      const counts = { pending: 0, processing: 0, completed: 0, failed: 0 };
      for (const row of rows) counts[row.status] = Number(row.n);
      return counts;
    },
  };
}
