import type { Queryable } from '../app/ports/database.ts';
import type { OrderView, PositionView } from '../app/projections.ts';
import { ORDER_VIEW_COLUMNS, POSITION_VIEW_COLUMNS, toOrderView, toPositionView } from './readModels.ts';

/*
 * The read-model tables as the rebuild and the replay check handle them: rows read by id or by
 * id range, and rows written in bulk (one statement per batch), into the live table or into the
 * one a rebuild fills.
 */

interface ViewTable<View> {
  readonly table: string;
  readonly id: string;
  /** Every column with its SQL type, as jsonb_to_recordset needs them. */
  readonly columns: readonly (readonly [name: string, type: string])[];
  readonly select: string;
  readonly toView: (row: never) => View;
}

const ORDERS: ViewTable<OrderView> = {
  table: 'orders_view',
  id: 'order_id',
  columns: [
    ['order_id', 'uuid'],
    ['user_id', 'text'],
    ['order_type', 'text'],
    ['status', 'text'],
    ['from_amount', 'numeric'],
    ['from_currency', 'text'],
    ['to_currency', 'text'],
    ['quoted_price', 'numeric'],
    ['quoted_to_amount', 'numeric'],
    ['executed_price', 'numeric'],
    ['to_amount', 'numeric'],
    ['tx_hash', 'text'],
    ['position_id', 'uuid'],
    ['failure_reason', 'text'],
    ['failed_step', 'text'],
    ['created_at', 'timestamptz'],
    ['updated_at', 'timestamptz'],
    ['version', 'int'],
  ],
  select: ORDER_VIEW_COLUMNS,
  toView: toOrderView,
};

const POSITIONS: ViewTable<PositionView> = {
  table: 'positions_view',
  id: 'position_id',
  columns: [
    ['position_id', 'uuid'],
    ['user_id', 'text'],
    ['status', 'text'],
    ['from_currency', 'text'],
    ['to_currency', 'text'],
    ['total_from_amount', 'numeric'],
    ['total_to_amount', 'numeric'],
    ['order_ids', 'uuid[]'],
    ['close_reason', 'text'],
    ['created_at', 'timestamptz'],
    ['updated_at', 'timestamptz'],
    ['version', 'int'],
  ],
  select: POSITION_VIEW_COLUMNS,
  toView: toPositionView,
};

export const VIEW_TABLES = { orders: ORDERS, positions: POSITIONS } as const;
export type ViewKind = keyof typeof VIEW_TABLES;

/** What each kind of view's rows are. */
export interface ViewOf {
  readonly orders: OrderView;
  readonly positions: PositionView;
}

/** Rows of `kind` with these ids, from `table` (the live one unless said). */
export async function loadRows<K extends ViewKind>(
  q: Queryable,
  kind: K,
  ids: readonly string[],
  table: string = VIEW_TABLES[kind].table,
): Promise<ViewOf[K][]> {
  if (ids.length === 0) return [];
  const { id, select, toView } = VIEW_TABLES[kind];
  const rows = await q.query<never>(`SELECT ${select} FROM ${table} WHERE ${id} = ANY($1::uuid[])`, [ids]);
  return rows.map((row) => toView(row) as ViewOf[K]);
}

/** Rows of `kind` with ids in (after, upTo]; `after` undefined: from the first, `upTo`: to the last. */
export async function loadRange<K extends ViewKind>(
  q: Queryable,
  kind: K,
  after: string | undefined,
  upTo: string | undefined,
): Promise<ViewOf[K][]> {
  const { table, id, select, toView } = VIEW_TABLES[kind];
  const rows = await q.query<never>(
    `SELECT ${select} FROM ${table}
     WHERE ($1::uuid IS NULL OR ${id} > $1::uuid) AND ($2::uuid IS NULL OR ${id} <= $2::uuid)
     ORDER BY ${id}`,
    [after ?? null, upTo ?? null],
  );
  return rows.map((row) => toView(row) as ViewOf[K]);
}

/** Inserts or replaces rows of `kind` in `table`, in one statement. */
export async function upsertRows<K extends ViewKind>(
  q: Queryable,
  kind: K,
  rows: readonly ViewOf[K][],
  table: string,
): Promise<void> {
  if (rows.length === 0) return;
  const { id, columns } = VIEW_TABLES[kind];
  const names = columns.map(([name]) => name);
  await q.query(
    `INSERT INTO ${table} (${names.join(', ')})
     SELECT ${names.join(', ')}
     FROM jsonb_to_recordset($1::text::jsonb) AS r(${columns.map(([name, type]) => `${name} ${type}`).join(', ')})
     ON CONFLICT (${id}) DO UPDATE SET ${names
       .filter((name) => name !== id)
       .map((name) => `${name} = EXCLUDED.${name}`)
       .join(', ')}`,
    [JSON.stringify(rows)],
  );
}
