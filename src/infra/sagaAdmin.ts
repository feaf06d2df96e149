import type { Queryable } from '../app/ports/database.ts';
import type { SagaRow, SagaRowQuery, SagaRows } from '../app/ports/sagaAdmin.ts';

/*
 * The admin API's saga rows: `orders_view` (status, user, times) with `open_sagas` (not ended).
 * Stuck and age are computed by the database's clock, as the sweeper's staleness is.
 */

type Row = Omit<SagaRow, 'created_at' | 'updated_at' | 'age_ms'> & {
  readonly created_at: Date | string;
  readonly updated_at: Date | string;
  readonly age_ms: number | string;
};

const iso = (time: Date | string): string => (time instanceof Date ? time : new Date(time)).toISOString();

const toSagaRow = (row: Row): SagaRow => ({
  ...row,
  created_at: iso(row.created_at),
  updated_at: iso(row.updated_at),
  age_ms: Math.max(0, Math.floor(Number(row.age_ms))),
});

/** Columns of a row; $1 is the stuck threshold in milliseconds. */
const COLUMNS = `v.order_id::text AS order_id, v.user_id, v.status, v.failure_reason, v.created_at, v.updated_at,
  (extract(epoch FROM now() - v.updated_at) * 1000)::float8 AS age_ms,
  s.order_id IS NOT NULL AS open,
  (s.order_id IS NOT NULL AND v.updated_at < now() - $1 * interval '1 millisecond') AS stuck`;

/**
 * One statement per combination of filters. The stuck list starts from open_sagas (the sagas in
 * flight, a few hundred rows) and sorts what is left; the others walk orders_view_by_update
 * (migration 013) backwards from the cursor, filtering as they go.
 */
function listSql(query: SagaRowQuery) {
  const params: unknown[] = [query.stuckAfterMs];
  const where: string[] = [];
  let from = 'orders_view v LEFT JOIN open_sagas s ON s.order_id = v.order_id';
  if (query.stuck === true) {
    from = 'open_sagas s JOIN orders_view v ON v.order_id = s.order_id';
    where.push(`v.updated_at < now() - $1 * interval '1 millisecond'`);
  } else if (query.stuck === false) {
    where.push(`(s.order_id IS NULL OR v.updated_at >= now() - $1 * interval '1 millisecond')`);
  }
  if (query.status !== undefined) {
    params.push(query.status);
    where.push(`v.status = $${params.length}`);
  }
  if (query.userId !== undefined) {
    params.push(query.userId);
    where.push(`v.user_id = $${params.length}`);
  }
  if (query.after !== undefined) {
    params.push(query.after.updated_at, query.after.order_id);
    where.push(`(v.updated_at, v.order_id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
  }
  params.push(query.limit);
  const text = `SELECT ${COLUMNS} FROM ${from}
    ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
    ORDER BY v.updated_at DESC, v.order_id DESC LIMIT $${params.length}`;
  return { text, params };
}

/** SagaRows on `orders_view` and `open_sagas`, for PostgreSQL and PGlite alike. */
export function createSagaRows(db: Queryable): SagaRows {
  return {
    async list(query) {
      const { text, params } = listSql(query);
      return (await db.query<Row>(text, params)).map(toSagaRow);
    },
    async one(orderId, stuckAfterMs) {
      const [row] = await db.query<Row>(
        `SELECT ${COLUMNS} FROM orders_view v LEFT JOIN open_sagas s ON s.order_id = v.order_id
         WHERE v.order_id = $2`,
        [stuckAfterMs, orderId],
      );
      return row && toSagaRow(row);
    },
  };
}
