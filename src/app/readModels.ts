import { Buffer } from 'node:buffer';
import { NotFoundError } from '../domain/errors.ts';
import type { OrderView, OrderViewStatus, PositionView, PositionViewStatus } from './projections.ts';
import type { OrderNotification, ReadModels, ViewCursor, ViewListQuery } from './ports/readModels.ts';

/** Rows per page unless the client asks otherwise, and the most it may ask for. */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

/** A page of a list and where the next one starts (null: this is the last). */
export interface Page<Row> {
  readonly rows: readonly Row[];
  readonly next_cursor: string | null;
}

export interface ListRequest<Status extends string> {
  readonly status?: Status | undefined;
  readonly limit: number;
  readonly cursor?: ViewCursor | undefined;
}

/** Queries over the read models: what GET /orders/:id, /positions/:id and the users' lists answer. */
export interface ReadModelQueries {
  /** @throws NotFoundError when there is no such order. */
  order(orderId: string): Promise<OrderView>;
  /** @throws NotFoundError when there is no such position. */
  position(positionId: string): Promise<PositionView>;
  ordersOf(userId: string, request: ListRequest<OrderViewStatus>): Promise<Page<OrderView>>;
  positionsOf(userId: string, request: ListRequest<PositionViewStatus>): Promise<Page<PositionView>>;
  /** The order's notifications, oldest first (none yet while it runs). */
  notificationsOf(orderId: string): Promise<OrderNotification[]>;
}

/**
 * The opaque cursor a client gets: the last row's place in list order, base64url-encoded JSON.
 * Keyset, not offset: rows inserted while a client pages never shift a page, so nothing is
 * skipped or shown twice.
 */
export function encodeCursor(cursor: ViewCursor): string {
  return Buffer.from(JSON.stringify([cursor.created_at, cursor.id])).toString('base64url');
}

const BASE64URL = /^[A-Za-z0-9_-]{1,400}$/;
const ISO_MILLIS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The cursor a client sent back, or undefined when it is not one this service handed out. */
export function decodeCursor(text: string): ViewCursor | undefined {
  if (!BASE64URL.test(text)) return undefined;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(decoded) || decoded.length !== 2) return undefined;
  const [createdAt, id] = decoded as unknown[];
  if (typeof createdAt !== 'string' || typeof id !== 'string') return undefined;
  if (!ISO_MILLIS.test(createdAt) || !UUID.test(id)) return undefined;
  const time = new Date(createdAt);
  // Rejects 2026-02-30 and the like: a real time prints back as itself.
  if (Number.isNaN(time.getTime()) || time.toISOString() !== createdAt) return undefined;
  return { created_at: createdAt, id };
}

async function page<Row extends { readonly created_at: string }, Status extends string>(
  list: (query: ViewListQuery<Status>) => Promise<Row[]>,
  idOf: (row: Row) => string,
  userId: string,
  request: ListRequest<Status>,
): Promise<Page<Row>> {
  // One more than asked: whether it comes back says whether there is a next page.
  const rows = await list({
    userId,
    status: request.status,
    limit: request.limit + 1,
    after: request.cursor,
  });
  const shown = rows.slice(0, request.limit);
  const last = shown.at(-1);
  return {
    rows: shown,
    next_cursor:
      rows.length > request.limit && last
        ? encodeCursor({ created_at: last.created_at, id: idOf(last) })
        : null,
  };
}

export function createReadModelQueries(readModels: ReadModels): ReadModelQueries {
  return {
    async order(orderId) {
      const row = await readModels.order(orderId);
      if (!row) throw new NotFoundError(`There is no order with id ${orderId}`);
      return row;
    },
    async position(positionId) {
      const row = await readModels.position(positionId);
      if (!row) throw new NotFoundError(`There is no position with id ${positionId}`);
      return row;
    },
    ordersOf: (userId, request) =>
      page(
        (q) => readModels.ordersOf(q),
        (r) => r.order_id,
        userId,
        request,
      ),
    positionsOf: (userId, request) =>
      page(
        (q) => readModels.positionsOf(q),
        (r) => r.position_id,
        userId,
        request,
      ),
    notificationsOf: (orderId) => readModels.notificationsOf(orderId),
  };
}
