import type { Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Principal } from '../app/apiKeys.ts';
import type { FeedBatch, OrderFeed } from '../app/orderFeed.ts';
import type { OrderFeedRows } from '../app/ports/orderFeed.ts';
import { ORDER_VIEW_STATUSES } from '../app/projections.ts';
import type { OrderView } from '../app/projections.ts';
import { encodeCursor } from '../app/readModels.ts';
import type { FieldProblem } from '../domain/errors.ts';
import { principalOf } from './auth.ts';
import { readListQuery } from './listQuery.ts';
import { invalid, RequestProblem } from './problems.ts';

/**
 * The data routes of the dashboard (/ui): who the key is (`GET /whoami`), every user's orders a
 * page at a time (`GET /admin/orders`, admin keys) and the live feed (`GET /ui/stream/orders`,
 * Server-Sent Events: one message per tick with every change the key may see).
 */
export interface DashboardDeps {
  readonly rows: OrderFeedRows;
  readonly feed: OrderFeed;
  /** A comment line this often keeps proxies from closing a quiet stream (15 s). */
  readonly keepAliveMs?: number;
}

const ISO_MILLIS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** A client's value in a message: quoted, and cut short when long. */
const quoted = (value: string) => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);

function forbidden(detail: string): never {
  throw new RequestProblem(403, 'forbidden', 'Forbidden', detail);
}

/**
 * `GET /whoami`: what the key may see, so a page shows just that. Open (auth.ts): without a valid
 * key it answers `authenticated: false` rather than 401, so a page learns that it must ask for a
 * key (or that the one it holds was refused) without an error.
 */
export function mountWhoami(app: Hono): void {
  app.get('/whoami', (c) => {
    // Unset: keys are configured and this request holds no valid one (requireApiKey lets it by).
    const principal = c.get('principal') as Principal | undefined;
    return c.json({
      authenticated: principal !== undefined,
      user_id: principal?.kind === 'user' ? principal.userId : null,
      admin: principal !== undefined && principal.kind !== 'user',
      keys_required: principal?.kind !== 'open',
    });
  });
}

/**
 * The stream's `?user=` and resume point, validated: a user's key is held to its own user.
 * The resume point is `Last-Event-ID` (a reconnect) or `?since=` (an ISO-8601 time).
 */
function readStreamQuery(c: Context): { userId: string | undefined; since: string | undefined } {
  const problems: FieldProblem[] = [];
  const single = (name: string) => {
    const values = c.req.queries(name) ?? [];
    if (values.length > 1) problems.push({ field: name, message: 'give it at most once' });
    return values[0];
  };
  for (const name of Object.keys(c.req.queries()))
    if (name !== 'user' && name !== 'since')
      problems.push({ field: name, message: 'is not a parameter of the stream (user, since)' });
  const user = single('user');
  if (user !== undefined && (user.length === 0 || user.length > 128))
    problems.push({ field: 'user', message: 'must be a user id of 1 to 128 characters' });
  const since = c.req.header('last-event-id') ?? single('since');
  if (since !== undefined && (!ISO_MILLIS.test(since) || Number.isNaN(Date.parse(since))))
    problems.push({
      field: 'since',
      message: `must be an event id this stream sent (an ISO-8601 time in UTC, to the millisecond); got ${quoted(since)}`,
    });
  if (problems.length > 0) invalid('invalid_query', problems);
  const principal = principalOf(c);
  if (principal.kind === 'user') {
    if (user !== undefined && user !== principal.userId)
      forbidden("This API key acts for another user: a user's key streams only that user's orders");
    return { userId: principal.userId, since };
  }
  return { userId: user, since };
}

/** Batches waiting for a slow client, merged: each order once, at its newest version. */
function merge(into: FeedBatch, next: FeedBatch): FeedBatch {
  const byId = new Map<string, OrderView>(into.orders.map((o) => [o.order_id, o]));
  for (const order of next.orders) {
    const held = byId.get(order.order_id);
    if (!held || held.version <= order.version) byId.set(order.order_id, order);
  }
  return {
    cursor: next.cursor ?? into.cursor,
    orders: [...byId.values()],
    counts: next.counts ?? into.counts,
    ...(into.truncated || next.truncated ? { truncated: true } : {}),
  };
}

export function mountDashboardApi(app: Hono, deps: DashboardDeps): void {
  const keepAliveMs = deps.keepAliveMs ?? 15_000;

  app.get('/admin/orders', async (c) => {
    if (principalOf(c).kind === 'user')
      forbidden("Every user's orders need an admin key; a user's key lists its own: GET /users/{id}/orders");
    const request = readListQuery(c, ORDER_VIEW_STATUSES);
    const users = c.req.queries('user') ?? [];
    if (users.length > 1 || (users[0] !== undefined && (users[0].length === 0 || users[0].length > 128))) {
      invalid('invalid_query', [{ field: 'user', message: 'must be one user id of 1 to 128 characters' }]);
    }
    const rows = await deps.rows.list({
      status: request.status,
      userId: users[0],
      limit: request.limit + 1,
      after: request.cursor,
    });
    const shown = rows.slice(0, request.limit);
    const last = shown.at(-1);
    return c.json({
      orders: shown,
      next_cursor:
        rows.length > request.limit && last
          ? encodeCursor({ created_at: last.created_at, id: last.order_id })
          : null,
    });
  });

  app.get('/ui/stream/orders', (c) => {
    const { userId, since } = readStreamQuery(c);
    return streamSSE(c, async (stream) => {
      let pending: FeedBatch | undefined;
      let writing = false;
      let ended = false;
      let wake: (() => void) | undefined;
      const finished = new Promise<void>((resolve) => (wake = resolve));
      const end = () => {
        ended = true;
        wake?.();
      };

      const write = async (event: string, batch: FeedBatch) =>
        stream.writeSSE({
          event,
          data: JSON.stringify(batch),
          ...(batch.cursor === undefined ? {} : { id: batch.cursor }),
        });
      // One write at a time: while the client is slow, batches merge rather than pile up.
      const flush = async () => {
        if (writing) return;
        writing = true;
        try {
          while (pending && !ended) {
            const batch = pending;
            pending = undefined;
            await write('orders', batch);
          }
        } catch {
          end();
        } finally {
          writing = false;
        }
      };

      const unwatch = deps.feed.watch({
        userId,
        send(batch) {
          pending = pending ? merge(pending, batch) : batch;
          void flush();
        },
        close: end,
      });
      stream.onAbort(end);
      const keepAlive = setInterval(() => {
        if (!writing) void stream.write(': keep-alive\n\n').catch(end);
      }, keepAliveMs);
      try {
        // First: what the client missed (a reconnect), or the counts and where the feed starts.
        // When the database cannot answer, the stream ends and the client reconnects.
        const first: FeedBatch | undefined = await (
          since ? deps.feed.since(since, userId) : deps.feed.start(userId)
        ).catch(() => undefined);
        if (first === undefined) return;
        if (first.truncated) {
          // Too much was missed to patch the page: the client reloads its list, then follows on.
          await stream.writeSSE({ event: 'reset', data: '{}' });
          pending = pending ? merge({ ...first, orders: [] }, pending) : { ...first, orders: [] };
        } else {
          pending = pending ? merge(first, pending) : first;
        }
        await flush();
        await finished;
      } finally {
        clearInterval(keepAlive);
        unwatch();
      }
    });
  });
}
