import { httpInstrumentationMiddleware } from '@hono/otel';
import { Hono } from 'hono';
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import { matchedRoutes } from 'hono/route';
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { ChannelsService } from '../app/notifications/channels.ts';
import { IdempotencyKeyInFlightError, IdempotencyKeyReusedError } from '../app/orders.ts';
import type { OrderService } from '../app/orders.ts';
import type { PositionService } from '../app/positions.ts';
import { ORDER_VIEW_STATUSES, POSITION_VIEW_STATUSES } from '../app/projections.ts';
import type { ReadModelQueries } from '../app/readModels.ts';
import type { SagaViews } from '../app/sagaView.ts';
import type { StoredEvent } from '../app/ports/eventStore.ts';
import type { HealthProbe, ReadinessProbe } from '../app/ports/health.ts';
import type { LogContext, Logger } from '../app/ports/logger.ts';
import type { Metrics } from '../app/ports/metrics.ts';
import { NotFoundError, ValidationError } from '../domain/errors.ts';
import type { Currencies } from '../domain/money.ts';
import { mountAdmin } from './admin.ts';
import type { AdminDeps } from './admin.ts';
import { assertCanAccess, principalOf, requireApiKey } from './auth.ts';
import type { Authenticator } from './auth.ts';
import { validateChannelsRequest, validateUserId } from './channelsRequest.ts';
import { mountDocs } from './docs.ts';
import { readJson } from './jsonBody.ts';
import { mountDashboardApi, mountWhoami } from './dashboardApi.ts';
import type { DashboardDeps } from './dashboardApi.ts';
import { mountUiPages } from './ui.ts';
import { strictPathParam } from './fields.ts';
import { apiDocument } from './openapi.ts';
import { readListQuery } from './listQuery.ts';
import { validateOrderRequest } from './orderRequest.ts';
import { errorHandler, problemResponse, RequestProblem } from './problems.ts';
import { perUserRateLimit } from './rateLimit.ts';
import type { IntakeGate } from './intakeGate.ts';
import type { RateLimit } from './rateLimit.ts';

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
  /** API keys (src/app/apiKeys.ts's key ring); without it the API is open. */
  readonly auth?: Authenticator | undefined;
  /** Puts the request id on every log line of a request (src/infra/logger.ts's logContext). */
  readonly logContext?: LogContext;
  /** Per-user limit on POST /orders, per process; none when unset. */
  readonly orderRateLimit?: RateLimit | undefined;
  /** The admin API (`/admin/…`, src/http/admin.ts); the routes exist only with it. */
  readonly admin?: AdminDeps | undefined;
  /** Counts every request by route pattern and status (none when unset). */
  readonly metrics?: Metrics | undefined;
  /** `GET /metrics`: the exposition text (the route exists only with it). */
  readonly metricsEndpoint?: { readonly contentType: string; render(): Promise<string> } | undefined;
  /** `GET /ready`: 200 when ready, 503 naming what is down; without it, ready when the database answers. */
  readonly readiness?: ReadinessProbe | undefined;
  /** Closed on a graceful stop: new requests get 503 while those in flight finish. */
  readonly intake?: IntakeGate | undefined;
  /** OpenTelemetry: a SERVER span per request (@hono/otel); only when tracing is on. */
  readonly tracing?: boolean;
  /** The dashboard's data: `GET /admin/orders` and the live feed `/ui/stream/orders` (only with it). */
  readonly dashboard?: DashboardDeps | undefined;
}

/**
 * The route a request matched, as registered (`/orders/:id`), so the metric's label set stays
 * bounded whatever paths clients send; `unmatched` when only middleware matched (a 404).
 */
function routeOf(c: Context): string {
  const last = matchedRoutes(c).at(-1);
  return last === undefined || last.method === 'ALL' ? 'unmatched' : last.path;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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

/** The user of an order's or a position's stream: its first event (OrderAccepted, PositionCreated) names it. */
function ownerOf(events: readonly StoredEvent[]): string | undefined {
  const first = events[0];
  return first?.event_type === 'OrderAccepted' || first?.event_type === 'PositionCreated'
    ? first.event_data.user_id
    : undefined;
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

/** The 202 of an accepted order: recorded with its Idempotency-Key and replayed as is to a retry. */
function acceptedResponse(orderId: string) {
  const body = {
    order_id: orderId,
    status: 'pending',
    message: 'Order accepted and will be processed asynchronously',
  };
  return { status: 202, body: JSON.stringify(body) };
}

/** The IETF Idempotency-Key draft's answers: 422 for a key reused with another request, 409 while in flight. */
function idempotencyProblem(error: unknown): never {
  if (error instanceof IdempotencyKeyReusedError) {
    throw new RequestProblem(422, 'idempotency_key_reused', 'Idempotency-Key reused', error.message);
  }
  if (error instanceof IdempotencyKeyInFlightError) {
    throw new RequestProblem(409, 'idempotency_key_in_flight', 'Request in progress', error.message, {
      headers: { 'Retry-After': '1' },
    });
  }
  throw error;
}

/** The HTTP API: no server here, so tests call `app.request()` and main.ts picks the server. */
export function createApp(deps: AppDeps): Hono {
  const maxBodyBytes = deps.maxBodyBytes ?? 16 * 1024;
  const app = new Hono();
  const { metrics } = deps;
  if (metrics) {
    app.use(async (c, next) => {
      const started = performance.now();
      await next();
      metrics.httpRequest(c.req.method, routeOf(c), c.res.status, performance.now() - started);
    });
  }
  // X-Request-Id: the client's when it is 1-255 of [A-Za-z0-9_=-], else a new UUID; on every response.
  app.use(requestId());
  if (deps.intake) app.use(deps.intake.middleware);
  // Off, not even the middleware runs: tracing costs nothing per request.
  if (deps.tracing) app.use(httpInstrumentationMiddleware({ captureActiveRequests: false }));
  const { logContext } = deps;
  if (logContext) app.use((c, next) => logContext({ request_id: c.get('requestId') }, next));
  app.use(requireApiKey(deps.auth));
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
  // Whose order it is, from the read model.
  const orderOwner = async (id: string) => (await deps.readModels.order(id)).user_id;
  const positionId = (raw: string): string => {
    if (!UUID.test(raw)) throw new NotFoundError(`There is no position with id ${raw}`);
    return raw.toLowerCase();
  };

  const tooLarge = () => {
    throw new RequestProblem(
      413,
      'body_too_large',
      'Request body too large',
      `The body must be at most ${maxBodyBytes} bytes`,
    );
  };
  const limitStreamedBody = bodyLimit({ maxSize: maxBodyBytes, onError: tooLarge });
  // With a Content-Length (the HTTP parser holds the body to it) the header decides, without
  // touching `request.body`: on @hono/node-server that builds a web stream over the socket, and
  // the body is then no longer read straight from it (a sixth of the api's CPU per order).
  const limitBody: MiddlewareHandler = (c, next) => {
    const length = c.req.header('content-length');
    if (length === undefined || c.req.header('transfer-encoding') !== undefined) {
      return limitStreamedBody(c, next);
    }
    return Number.parseInt(length, 10) > maxBodyBytes ? tooLarge() : next();
  };

  const rateLimit = deps.orderRateLimit ? perUserRateLimit(deps.orderRateLimit) : undefined;

  app.post('/orders', limitBody, async (c) => {
    const body = await readJson(c.req.raw, 'the order');
    const order = validateOrderRequest(body, deps.currencies);
    assertCanAccess(c, order.user_id);
    const key = readIdempotencyKey(c.req.header('idempotency-key'));
    await rateLimit?.take(order.user_id);
    const accepted = deps.orders.accept(order, {
      causationId: c.get('requestId'),
      ...(key === undefined ? {} : { idempotency: { key, respond: acceptedResponse } }),
    });
    const { order_id, replayed, response } = await accepted.catch(idempotencyProblem);
    const { status, body: text } = response ?? acceptedResponse(order_id);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      Location: `/orders/${order_id}`,
    };
    if (replayed) headers['Idempotent-Replayed'] = 'true';
    return c.body(text, status as ContentfulStatusCode, headers);
  });

  app.get('/orders/:id', async (c) => {
    const order = await deps.readModels.order(orderId(c.req.param('id')));
    assertCanAccess(c, order.user_id);
    return c.json(order);
  });

  app.get('/positions/:id', async (c) => {
    const position = await deps.readModels.position(positionId(c.req.param('id')));
    assertCanAccess(c, position.user_id);
    return c.json(position);
  });

  app.get('/users/:userId/orders', async (c) => {
    const userId = validateUserId(strictPathParam(c, 'userId'));
    assertCanAccess(c, userId);
    const page = await deps.readModels.ordersOf(userId, readListQuery(c, ORDER_VIEW_STATUSES));
    return c.json({ orders: page.rows, next_cursor: page.next_cursor });
  });

  app.get('/users/:userId/positions', async (c) => {
    const userId = validateUserId(strictPathParam(c, 'userId'));
    assertCanAccess(c, userId);
    const page = await deps.readModels.positionsOf(userId, readListQuery(c, POSITION_VIEW_STATUSES));
    return c.json({ positions: page.rows, next_cursor: page.next_cursor });
  });

  app.get('/orders/:id/events', async (c) => {
    const id = orderId(c.req.param('id'));
    const events = await deps.orders.history(id);
    assertCanAccess(c, ownerOf(events));
    return c.json({ order_id: id, events: events.map(eventView) });
  });

  app.get('/positions/:id/events', async (c) => {
    const id = c.req.param('id');
    if (!UUID.test(id)) throw new NotFoundError(`There is no position with id ${id}`);
    const events = await deps.positions.history(id.toLowerCase());
    assertCanAccess(c, ownerOf(events));
    return c.json({ position_id: id.toLowerCase(), events: events.map(eventView) });
  });

  app.get('/orders/:id/saga', async (c) => {
    const id = orderId(c.req.param('id'));
    assertCanAccess(c, await orderOwner(id));
    return c.json(await deps.sagas.view(id));
  });

  app.get('/orders/:id/notifications', async (c) => {
    const id = orderId(c.req.param('id'));
    assertCanAccess(c, await orderOwner(id));
    return c.json({ order_id: id, notifications: await deps.readModels.notificationsOf(id) });
  });

  const channels = deps.channels;
  if (channels) {
    app.put('/users/:userId/channels', limitBody, async (c) => {
      assertCanAccess(c, strictPathParam(c, 'userId'));
      const body = await readJson(c.req.raw, 'the channels');
      const { userId, changes } = validateChannelsRequest(strictPathParam(c, 'userId'), body);
      return c.json(await channels.update(userId, changes));
    });
    app.get('/users/:userId/channels', async (c) => {
      assertCanAccess(c, strictPathParam(c, 'userId'));
      return c.json(await channels.get(validateUserId(strictPathParam(c, 'userId'))));
    });
  }

  if (deps.admin) mountAdmin(app, deps.admin);
  mountWhoami(app);
  if (deps.dashboard) mountDashboardApi(app, deps.dashboard);

  // Documentation, open whatever the keys: the document is built once, from the zod schemas.
  const document = JSON.stringify(
    apiDocument({
      currencies: deps.currencies,
      channels: deps.channels !== undefined,
      admin: deps.admin !== undefined,
      metrics: deps.metricsEndpoint !== undefined,
      dashboard: deps.dashboard !== undefined,
    }),
  );
  app.get('/openapi.json', (c) => c.body(document, 200, { 'content-type': 'application/json' }));
  mountDocs(app);
  mountUiPages(app);

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

  app.get('/ready', async (c) => {
    const report = deps.readiness
      ? await deps.readiness.check()
      : await deps.health.outboxBacklog().then(
          () => ({ ready: true, checks: { database: { ok: true } } }),
          (error: unknown) => ({
            ready: false,
            checks: { database: { ok: false, detail: `unreachable: ${(error as Error).message}` } },
          }),
        );
    if (!report.ready) deps.logger.warn({ checks: report.checks }, 'not ready');
    return c.json(
      { status: report.ready ? 'ready' : 'not_ready', checks: report.checks },
      report.ready ? 200 : 503,
    );
  });

  const endpoint = deps.metricsEndpoint;
  if (endpoint) {
    // An operator's view of the whole service: an admin key once keys are configured.
    app.get('/metrics', async (c) => {
      const principal = principalOf(c);
      if (principal.kind === 'user') {
        throw new RequestProblem(403, 'forbidden', 'Forbidden', '/metrics needs an admin key');
      }
      return c.body(await endpoint.render(), 200, { 'content-type': endpoint.contentType });
    });
  }

  return app;
}
