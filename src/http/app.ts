import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import { parse as parseLosslessJson } from 'lossless-json';
import type { ChannelsService } from '../app/notifications/channels.ts';
import type { OrderService } from '../app/orders.ts';
import type { PositionService } from '../app/positions.ts';
import { ORDER_VIEW_STATUSES, POSITION_VIEW_STATUSES } from '../app/projections.ts';
import type { ReadModelQueries } from '../app/readModels.ts';
import type { SagaViews } from '../app/sagaView.ts';
import type { StoredEvent } from '../app/ports/eventStore.ts';
import type { HealthProbe } from '../app/ports/health.ts';
import type { Logger } from '../app/ports/logger.ts';
import { NotFoundError, ValidationError } from '../domain/errors.ts';
import type { Currencies } from '../domain/money.ts';
import { validateChannelsRequest, validateUserId } from './channelsRequest.ts';
import { strictPathParam } from './fields.ts';
import { readListQuery } from './listQuery.ts';
import { validateOrderRequest } from './orderRequest.ts';
import { errorHandler, problemResponse, RequestProblem } from './problems.ts';

export interface AppDeps {
  readonly orders: OrderService;
  readonly positions: PositionService;
  readonly sagas: SagaViews;
  /** The read models: GET /orders/:id, /positions/:id and the users' lists. */
  readonly readModels: ReadModelQueries;
  readonly health: HealthProbe;
  readonly currencies: Currencies;
  readonly logger: Logger;
  /** Users' notification channels (`/users/:userId/channels`); the routes exist only with it. */
  readonly channels?: ChannelsService | undefined;
  /** Largest accepted request body; 16 KiB unless set. */
  readonly maxBodyBytes?: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const JSON_CONTENT_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

function eventView(event: StoredEvent) {
  return {
    event_id: event.event_id,
    event_type: event.event_type,
    version: event.version,
    data: event.event_data,
    metadata: event.metadata,
    recorded_at: event.created_at,
  };
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

function readIdempotencyKey(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(header)) {
    throw new ValidationError([
      {
        field: 'Idempotency-Key',
        message: 'must be 1 to 255 visible ASCII characters (a UUID is a good choice)',
      },
    ]);
  }
  return header;
}

/**
 * Reads the body as JSON, keeping numbers' exact text (amounts never pass through a float).
 * `what` names the body in the error, e.g. "the order".
 */
async function readJson(request: Request, what: string): Promise<unknown> {
  const contentType = request.headers.get('content-type') ?? '';
  if (!JSON_CONTENT_TYPE.test(contentType)) {
    throw new RequestProblem(
      415,
      'unsupported_media_type',
      'Unsupported content type',
      `Send ${what} as JSON with "Content-Type: application/json" (got ${contentType ? `"${contentType}"` : 'none'})`,
    );
  }
  const bytes = await request.arrayBuffer();
  let text: string;
  try {
    // Strict: request.text() would turn bytes that are not UTF-8 (a lone surrogate's ED A0 80)
    // into U+FFFD, and the order would be stored under a user id nobody sent.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new RequestProblem(
      400,
      'malformed_json',
      'Malformed JSON',
      'The body is not valid UTF-8, as JSON must be',
    );
  }
  try {
    return parseLosslessJson(text);
  } catch (error) {
    throw new RequestProblem(
      400,
      'malformed_json',
      'Malformed JSON',
      `The body is not valid JSON: ${(error as Error).message}`,
    );
  }
}

/** The HTTP API: no server here, so tests call `app.request()` and main.ts picks the server. */
export function createApp(deps: AppDeps): Hono {
  const maxBodyBytes = deps.maxBodyBytes ?? 16 * 1024;
  const app = new Hono();
  app.use(requestId());
  app.onError(errorHandler(deps.logger));
  app.notFound((c) =>
    problemResponse(c, 404, {
      type: 'urn:market-order-saga:problem:not_found',
      title: 'Not found',
      detail: `No route for ${c.req.method} ${c.req.path}`,
    }),
  );

  const orderId = (raw: string): string => {
    if (!UUID.test(raw)) throw new NotFoundError(`There is no order with id ${raw}`);
    return raw.toLowerCase();
  };
  const positionId = (raw: string): string => {
    if (!UUID.test(raw)) throw new NotFoundError(`There is no position with id ${raw}`);
    return raw.toLowerCase();
  };

  const limitBody = bodyLimit({
    maxSize: maxBodyBytes,
    onError: () => {
      throw new RequestProblem(
        413,
        'body_too_large',
        'Request body too large',
        `The body must be at most ${maxBodyBytes} bytes`,
      );
    },
  });

  app.post('/orders', limitBody, async (c) => {
    const body = await readJson(c.req.raw, 'the order');
    const order = validateOrderRequest(body, deps.currencies);
    const idempotencyKey = readIdempotencyKey(c.req.header('idempotency-key'));
    const { order_id, replayed } = await deps.orders.accept(order, {
      causationId: c.get('requestId'),
      ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
    });
    return c.json(
      { order_id, status: 'pending', message: 'Order accepted and will be processed asynchronously' },
      202,
      { Location: `/orders/${order_id}`, ...(replayed ? { 'Idempotent-Replayed': 'true' } : {}) },
    );
  });

  app.get('/orders/:id', async (c) => {
    const order = await deps.readModels.order(orderId(c.req.param('id')));
    return c.json(order);
  });

  app.get('/positions/:id', async (c) => {
    const position = await deps.readModels.position(positionId(c.req.param('id')));
    return c.json(position);
  });

  app.get('/users/:userId/orders', async (c) => {
    const userId = validateUserId(strictPathParam(c, 'userId'));
    const page = await deps.readModels.ordersOf(userId, readListQuery(c, ORDER_VIEW_STATUSES));
    return c.json({ orders: page.rows, next_cursor: page.next_cursor });
  });

  app.get('/users/:userId/positions', async (c) => {
    const userId = validateUserId(strictPathParam(c, 'userId'));
    const page = await deps.readModels.positionsOf(userId, readListQuery(c, POSITION_VIEW_STATUSES));
    return c.json({ positions: page.rows, next_cursor: page.next_cursor });
  });

  app.get('/orders/:id/events', async (c) => {
    const id = orderId(c.req.param('id'));
    const events = await deps.orders.history(id);
    return c.json({ order_id: id, events: events.map(eventView) });
  });

  app.get('/positions/:id/events', async (c) => {
    const id = c.req.param('id');
    if (!UUID.test(id)) throw new NotFoundError(`There is no position with id ${id}`);
    const events = await deps.positions.history(id.toLowerCase());
    return c.json({ position_id: id.toLowerCase(), events: events.map(eventView) });
  });

  app.get('/orders/:id/saga', async (c) => c.json(await deps.sagas.view(orderId(c.req.param('id')))));

  const channels = deps.channels;
  if (channels) {
    app.put('/users/:userId/channels', limitBody, async (c) => {
      const body = await readJson(c.req.raw, 'the channels');
      const { userId, changes } = validateChannelsRequest(strictPathParam(c, 'userId'), body);
      return c.json(await channels.update(userId, changes));
    });
    app.get('/users/:userId/channels', async (c) =>
      c.json(await channels.get(validateUserId(strictPathParam(c, 'userId')))),
    );
  }

  app.get('/health', async (c) => {
    const { health } = deps;
    try {
      // The backlog too: 0 means caught up.
      const backlog = await health.outboxBacklog();
      return c.json({ status: 'ok', database: health.database, outbox_unpublished: backlog });
    } catch (error) {
      deps.logger.warn({ err: error }, 'health check failed');
      return c.json({ status: 'unavailable', database: health.database }, 503);
    }
  });

  return app;
}
