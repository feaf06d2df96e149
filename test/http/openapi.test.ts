import { randomUUID } from 'node:crypto';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChannelsService } from '../../src/app/notifications/channels.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { createNotificationStore } from '../../src/infra/notify/notificationStore.ts';
import { createUserChannelStore } from '../../src/infra/notify/userChannels.ts';
import { createSagaAdmin } from '../../src/app/sagaAdmin.ts';
import { createOrderFeed } from '../../src/app/orderFeed.ts';
import { createOrderFeedRows } from '../../src/infra/orderFeed.ts';
import { createDeadLetters } from '../../src/infra/deadLetters.ts';
import { createSagaRows } from '../../src/infra/sagaAdmin.ts';
import { createServiceMetrics } from '../../src/infra/metrics.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { testApp } from '../helpers/app.ts';
import { sagaWorld } from '../helpers/saga.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { aCatalogueEvent } from '../helpers/messages.ts';

interface Document {
  openapi: string;
  security: Array<Record<string, string[]>>;
  paths: Record<string, Record<string, Operation>>;
  components: {
    responses: Record<string, Response_>;
    headers: Record<string, Header>;
  };
}
interface Operation {
  security?: unknown[];
  requestBody?: { content: Record<string, { examples?: Record<string, { value: unknown }> }> };
  responses: Record<string, Response_ | { $ref: string }>;
}
interface Header {
  required?: boolean;
}
interface Response_ {
  headers?: Record<string, Header | { $ref: string }>;
  content?: Record<string, { schema: unknown; examples?: Record<string, { value: unknown }> }>;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

/** "GET /orders/{id}" for each route the Hono app serves (middleware left out). */
function servedOperations(app: Hono): Set<string> {
  return new Set(
    app.routes
      .filter((route) => route.method !== 'ALL')
      .map((route) => `${route.method} ${route.path.replace(/:(\w+)(\{[^}]*\})?/g, '{$1}')}`),
  );
}

function documentedOperations(doc: Document): Set<string> {
  return new Set(
    Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.keys(item)
        .filter((method) => METHODS.includes(method))
        .map((method) => `${method.toUpperCase()} ${path}`),
    ),
  );
}

function deref<T>(doc: Document, value: T | { $ref: string }): T {
  if (typeof value === 'object' && value !== null && '$ref' in value) {
    const [, , kind, name] = value.$ref.split('/');
    return (doc.components as unknown as Record<string, Record<string, T>>)[kind ?? '']?.[name ?? ''] as T;
  }
  return value;
}

/** A JSON pointer to `segments` in the document, as a URI fragment (Ajv resolves it). */
function pointer(...segments: string[]): string {
  return `openapi.json#/${segments.map((s) => encodeURIComponent(s.replaceAll('~', '~0').replaceAll('/', '~1'))).join('/')}`;
}

describe('the OpenAPI document', () => {
  let db: Database;
  let app: Hono;
  let doc: Document;
  let ajv: Ajv2020;

  beforeAll(async () => {
    db = await migratedPglite();
    const feedRows = createOrderFeedRows(db);
    const metrics = createServiceMetrics({ db, stuckAfterMs: 60_000, logger: silentLogger });
    app = testApp(db, {
      channels: createChannelsService(createUserChannelStore(db)),
      metrics,
      metricsEndpoint: metrics,
      admin: {
        sagas: createSagaAdmin({
          rows: createSagaRows(db),
          store: createEventStore(db),
          runner: sagaWorld(db).runner,
          deadlineMs: 30_000,
          stuckAfterMs: 0,
        }),
        deadLetters: createDeadLetters(db),
      },
      dashboard: { rows: feedRows, feed: createOrderFeed({ rows: feedRows, logger: silentLogger }) },
    });
    doc = (await (await app.request('/openapi.json')).json()) as Document;
    // The document as a JSON Schema (2020-12, the dialect of OpenAPI 3.1) resource, so that
    // answers can be checked against the schemas it documents, $refs and all.
    ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
    ajv.addSchema(doc, 'openapi.json');
  });
  afterAll(async () => {
    await db.close();
  });

  /**
   * Asserts that `res` is an answer the document describes for `operation` ("POST /orders"): its
   * status is listed, its required headers are there, and its body matches the schema of its
   * content type.
   */
  async function expectDocumented(res: Response, operation: string) {
    const [method = '', path = ''] = operation.split(' ');
    const op = doc.paths[path]?.[method.toLowerCase()];
    expect(op, `${operation} is documented`).toBeDefined();
    if (!op) return;
    const status = String(res.status);
    const documented = op.responses[status];
    expect(documented, `${operation} documents ${status}`).toBeDefined();
    if (!documented) return;
    const response = deref(doc, documented);
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      if (deref(doc, header).required)
        expect(res.headers.has(name), `${operation} ${status}: header ${name}`).toBe(true);
    }
    if (!response.content) return;
    const contentType = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    expect(Object.keys(response.content), `${operation} ${status}: content type`).toContain(contentType);
    if (!contentType.endsWith('json')) return;
    // The schema where it is written: inline, or behind the response's $ref.
    const where =
      '$ref' in documented
        ? pointer(
            'components',
            'responses',
            documented.$ref.split('/').at(-1) ?? '',
            'content',
            contentType,
            'schema',
          )
        : pointer('paths', path, method.toLowerCase(), 'responses', status, 'content', contentType, 'schema');
    const validate = ajv.compile({ $ref: where });
    const body: unknown = await res.clone().json();
    expect(validate(body) ? [] : validate.errors, `${operation} ${status}: body`).toEqual([]);
  }

  const postOrder = (body: unknown, headers: Record<string, string> = {}) =>
    app.request('/orders', {
      method: 'POST',
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
    });

  describe('when it is fetched', () => {
    it('is a valid OpenAPI 3.1 document', async () => {
      const validator = new Validator();
      const result = await validator.validate(structuredClone(doc) as unknown as Record<string, unknown>);
      expect(result.errors ?? []).toEqual([]);
      expect(result.valid).toBe(true);
      expect(validator.version).toBe('3.1');
    });

    it('is the same document on every request, as JSON', async () => {
      const again = await app.request('/openapi.json');
      expect(again.status).toBe(200);
      expect(again.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await again.json()).toEqual(doc);
    });
  });

  describe('when compared with the routes the app serves', () => {
    it('documents every route the app serves', () => {
      const documented = documentedOperations(doc);
      const undocumented = [...servedOperations(app)].filter((op) => !documented.has(op));
      expect(undocumented).toEqual([]);
    });

    it('documents only routes the app serves', () => {
      const served = servedOperations(app);
      const unserved = [...documentedOperations(doc)].filter((op) => !served.has(op));
      expect(unserved).toEqual([]);
    });

    it('leaves out the channel routes when the app has none', async () => {
      const bare = testApp(db);
      const bareDoc = (await (await bare.request('/openapi.json')).json()) as Document;
      expect(Object.keys(bareDoc.paths)).not.toContain('/users/{userId}/channels');
      const documented = documentedOperations(bareDoc);
      expect([...servedOperations(bare)].filter((op) => !documented.has(op))).toEqual([]);
    });
  });

  describe('when it comes to access', () => {
    it('declares the bearer scheme for every route but /health, /ready, /openapi.json, /docs, /whoami and the UI pages', () => {
      expect(doc.security).toEqual([{ bearer: [] }]);
      const open = [...documentedOperations(doc)].filter((op) => {
        const [method = '', path = ''] = op.split(' ');
        return doc.paths[path]?.[method.toLowerCase()]?.security?.length === 0;
      });
      expect(open.sort()).toEqual([
        'GET /docs',
        'GET /docs/{file}',
        'GET /health',
        'GET /openapi.json',
        'GET /ready',
        'GET /ui',
        'GET /ui/assets/{file}',
        'GET /ui/orders/{id}',
        'GET /ui/vendor/{file}',
        'GET /whoami',
      ]);
    });

    it('documents 401 and 403 problems on every guarded route', () => {
      for (const op of documentedOperations(doc)) {
        const [method = '', path = ''] = op.split(' ');
        const operation = doc.paths[path]?.[method.toLowerCase()];
        if (operation?.security?.length === 0) continue;
        expect(Object.keys(operation?.responses ?? {}), op).toEqual(expect.arrayContaining(['401', '403']));
        const unauthorized = deref(doc, operation?.responses['401'] ?? { $ref: '' });
        expect(Object.keys(unauthorized.headers ?? {}), op).toContain('WWW-Authenticate');
      }
    });
  });

  describe('when its example order is posted', () => {
    it("accepts the original design's order from the document, as documented", async () => {
      const examples = doc.paths['/orders']?.post?.requestBody?.content['application/json']?.examples ?? {};
      expect(examples.original?.value).toEqual({
        user_id: 'user-123',
        from_amount: 1000,
        from_currency: 'USDT',
        to_currency: 'BTC',
        order_type: 'market',
      });
      for (const example of Object.values(examples)) {
        const res = await postOrder({ ...(example.value as object), user_id: `user-${randomUUID()}` });
        expect(res.status).toBe(202);
        await expectDocumented(res, 'POST /orders');
      }
    });

    it('shows the validation problem the API really answers', async () => {
      const documented = deref(doc, doc.paths['/orders']?.post?.responses['422'] ?? { $ref: '' });
      const example = documented.content?.['application/problem+json']?.examples?.validation?.value;
      const res = await postOrder({
        user_id: 'user-123',
        from_amount: 0,
        from_currency: 'USDT',
        to_currency: 'USDT',
        order_type: 'market',
      });
      await expectDocumented(res, 'POST /orders');
      expect(await res.json()).toEqual(example);
    });
  });

  describe('when the API answers', () => {
    it('answers the admin routes in the documented shapes', async () => {
      const world = sagaWorld(db);
      const open = await world.place();
      const done = await world.place();
      await world.runner.run(done);
      const json = (body: unknown) => ({
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
      });
      const answers: Array<[string, Response | Promise<Response>]> = [
        ['GET /admin/sagas', app.request('/admin/sagas?stuck=true&limit=1')],
        ['GET /admin/sagas', app.request('/admin/sagas?status=lost')],
        ['GET /admin/sagas/{orderId}', app.request(`/admin/sagas/${done}`)],
        ['GET /admin/sagas/{orderId}', app.request(`/admin/sagas/${randomUUID()}`)],
        ['POST /admin/sagas/{orderId}/retry', app.request(`/admin/sagas/${done}/retry`, { method: 'POST' })],
        [
          'POST /admin/sagas/{orderId}/cancel',
          app.request(`/admin/sagas/${open}/cancel`, json({ reason: 'x' })),
        ],
        ['POST /admin/sagas/{orderId}/cancel', app.request(`/admin/sagas/${open}/cancel`, json({}))],
        [
          'POST /admin/sagas/{orderId}/cancel',
          app.request(`/admin/sagas/${done}/cancel`, json({ reason: 'x' })),
        ],
        ['GET /admin/dlq', app.request('/admin/dlq')],
        ['POST /admin/dlq/replay', app.request('/admin/dlq/replay', json({}))],
        ['POST /admin/dlq/drop', app.request('/admin/dlq/drop', json({ all: true }))],
        ['POST /admin/dlq/drop', app.request('/admin/dlq/drop', json({ ids: [] }))],
        ['GET /admin/orders', app.request('/admin/orders?limit=1')],
        ['GET /admin/orders', app.request(`/admin/orders?status=failed&user=${encodeURIComponent('a b')}`)],
        ['GET /admin/orders', app.request('/admin/orders?user=')],
        ['GET /whoami', app.request('/whoami')],
        ['GET /ui/stream/orders', app.request('/ui/stream/orders?since=yesterday')],
      ];
      const statuses: string[] = [];
      for (const [operation, pending] of answers) {
        const res = await pending;
        statuses.push(`${operation} ${res.status}`);
        await expectDocumented(res, operation);
      }
      expect(statuses).toEqual([
        'GET /admin/sagas 200',
        'GET /admin/sagas 400',
        'GET /admin/sagas/{orderId} 200',
        'GET /admin/sagas/{orderId} 404',
        'POST /admin/sagas/{orderId}/retry 409',
        'POST /admin/sagas/{orderId}/cancel 200',
        'POST /admin/sagas/{orderId}/cancel 400',
        'POST /admin/sagas/{orderId}/cancel 409',
        'GET /admin/dlq 200',
        'POST /admin/dlq/replay 200',
        'POST /admin/dlq/drop 200',
        'POST /admin/dlq/drop 400',
        'GET /admin/orders 200',
        'GET /admin/orders 200',
        'GET /admin/orders 400',
        'GET /whoami 200',
        'GET /ui/stream/orders 400',
      ]);
    });

    it('answers in the documented shapes, with the documented headers', async () => {
      const user = `user-${randomUUID()}`;
      const accepted = await postOrder(
        { user_id: user, from_amount: '10', from_currency: 'USDT', to_currency: 'BTC', order_type: 'market' },
        { 'idempotency-key': randomUUID(), 'x-request-id': 'trace-1' },
      );
      await expectDocumented(accepted, 'POST /orders');
      expect(accepted.headers.get('x-request-id')).toBe('trace-1');
      const { order_id } = (await accepted.json()) as { order_id: string };

      const saga = await app.request(`/orders/${order_id}/saga`);
      await expectDocumented(saga, 'GET /orders/{id}/saga');
      const { position_id } = (await saga.clone().json()) as { position_id: string };
      // The saga does not run here: its position is opened by hand.
      await createEventStore(db).append([
        {
          aggregate_id: position_id,
          aggregate_type: 'position',
          expected_version: 0,
          events: [aCatalogueEvent(order_id, 'PositionCreated')],
        },
      ]);

      // What the notifier records once the order has ended: one row sent, one skipped.
      const now = new Date();
      const notification = {
        event_id: randomUUID(),
        order_id,
        user_id: user,
        subject: 'Order completed',
        text: 'Order completed: 10 USDT → 0.0001 BTC',
      };
      await createNotificationStore(db).createAll(
        [
          { draft: { ...notification, channel: 'telegram', recipient: '123456789' }, waitReason: undefined },
          {
            draft: {
              ...notification,
              channel: 'email',
              recipient: null,
              skipped: 'the user has no email address',
            },
            waitReason: undefined,
          },
        ],
        { token: randomUUID(), now, until: new Date(now.getTime() + 30_000) },
      );

      const answers: Array<[string, Response | Promise<Response>]> = [
        ['GET /orders/{id}', app.request(`/orders/${order_id}`)],
        ['GET /orders/{id}/events', app.request(`/orders/${order_id}/events`)],
        ['GET /orders/{id}/notifications', app.request(`/orders/${order_id}/notifications`)],
        ['GET /orders/{id}/notifications', app.request(`/orders/${randomUUID()}/notifications`)],
        ['GET /ui/orders/{id}', app.request(`/ui/orders/${order_id}`)],
        ['GET /ui/assets/{file}', app.request('/ui/assets/order.js')],
        ['GET /ui/assets/{file}', app.request('/ui/assets/no-such-file.js')],
        ['GET /ui/vendor/{file}', app.request('/ui/vendor/elk.bundled.js')],
        ['GET /positions/{id}/events', app.request(`/positions/${position_id}/events`)],
        ['GET /positions/{id}', app.request(`/positions/${position_id}`)],
        ['GET /positions/{id}', app.request(`/positions/${randomUUID()}`)],
        ['GET /users/{userId}/orders', app.request(`/users/${user}/orders?status=pending&limit=1`)],
        ['GET /users/{userId}/orders', app.request(`/users/${user}/orders?cursor=not-a-cursor`)],
        ['GET /users/{userId}/positions', app.request(`/users/${user}/positions`)],
        ['GET /users/{userId}/positions', app.request(`/users/${user}/positions?limit=0`)],
        ['GET /orders/{id}', app.request(`/orders/${randomUUID()}`)],
        ['GET /orders/{id}/events', app.request('/orders/not-an-id/events')],
        [
          'PUT /users/{userId}/channels',
          app.request(`/users/${user}/channels`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ telegram_chat_id: 123456789, email: 'trader@example.com' }),
          }),
        ],
        ['GET /users/{userId}/channels', app.request(`/users/${user}/channels`)],
        ['GET /users/{userId}/channels', app.request(`/users/${'x'.repeat(129)}/channels`)],
        [
          'PUT /users/{userId}/channels',
          app.request(`/users/${user}/channels`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ email: 'not an address' }),
          }),
        ],
        ['GET /health', app.request('/health')],
        ['GET /ready', app.request('/ready')],
        ['GET /metrics', app.request('/metrics')],
        ['GET /openapi.json', app.request('/openapi.json')],
        ['GET /docs', app.request('/docs')],
        ['GET /docs/{file}', app.request('/docs/init.js')],
        ['GET /docs/{file}', app.request('/docs/no-such-file.js')],
        ['POST /orders', postOrder('{"user_id": ')],
        [
          'POST /orders',
          app.request('/orders', {
            method: 'POST',
            body: 'user_id=u1',
            headers: { 'content-type': 'text/plain' },
          }),
        ],
        ['POST /orders', postOrder(JSON.stringify({ user_id: 'x'.repeat(17 * 1024) }))],
        ['POST /orders', postOrder({ user_id: user }, { 'idempotency-key': 'not valid' })],
      ];
      const statuses: string[] = [];
      for (const [operation, pending] of answers) {
        const res = await pending;
        statuses.push(`${operation} ${res.status}`);
        await expectDocumented(res, operation);
      }
      const listed = (await (await app.request(`/orders/${order_id}/notifications`)).json()) as {
        notifications: Array<{
          channel: string;
          status: string;
          recipient: string | null;
          error: string | null;
        }>;
      };
      expect(
        listed.notifications.map(({ channel, status, recipient, error }) => ({
          channel,
          status,
          recipient,
          error,
        })),
      ).toEqual([
        { channel: 'email', status: 'skipped', recipient: null, error: 'the user has no email address' },
        { channel: 'telegram', status: 'sending', recipient: '123456789', error: null },
      ]);
      // Each kind of answer was reached: a route that changed its statuses would show here.
      expect(statuses).toEqual([
        'GET /orders/{id} 200',
        'GET /orders/{id}/events 200',
        'GET /orders/{id}/notifications 200',
        'GET /orders/{id}/notifications 404',
        'GET /ui/orders/{id} 200',
        'GET /ui/assets/{file} 200',
        'GET /ui/assets/{file} 404',
        'GET /ui/vendor/{file} 200',
        'GET /positions/{id}/events 200',
        'GET /positions/{id} 200',
        'GET /positions/{id} 404',
        'GET /users/{userId}/orders 200',
        'GET /users/{userId}/orders 400',
        'GET /users/{userId}/positions 200',
        'GET /users/{userId}/positions 400',
        'GET /orders/{id} 404',
        'GET /orders/{id}/events 404',
        'PUT /users/{userId}/channels 200',
        'GET /users/{userId}/channels 200',
        'GET /users/{userId}/channels 422',
        'PUT /users/{userId}/channels 422',
        'GET /health 200',
        'GET /ready 200',
        'GET /metrics 200',
        'GET /openapi.json 200',
        'GET /docs 200',
        'GET /docs/{file} 200',
        'GET /docs/{file} 404',
        'POST /orders 400',
        'POST /orders 415',
        'POST /orders 413',
        'POST /orders 422',
      ]);
    });
  });
});

describe('the API reference at /docs', () => {
  let db: Database;
  let app: Hono;

  beforeAll(async () => {
    db = await migratedPglite();
    app = testApp(db);
  });
  afterAll(async () => {
    await db.close();
  });

  const TYPES: Record<string, RegExp> = {
    css: /^text\/css/,
    js: /^text\/javascript/,
    png: /^image\/png$/,
  };

  it('is an HTML page whose scripts, styles and icons all come from this service, each served', async () => {
    const res = await app.request('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script

    const urls = [...html.matchAll(/<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"/g)].map(
      (m) => m[1] ?? '',
    );
    expect(urls.length).toBeGreaterThanOrEqual(4);
    for (const url of urls) {
      expect(url, url).toMatch(/^\/docs\/[\w.-]+$/);
      const asset = await app.request(url);
      expect(asset.status, url).toBe(200);
      expect(asset.headers.get('content-type'), url).toMatch(TYPES[url.split('.').at(-1) ?? ''] ?? /^$/);
      const body = new Uint8Array(await asset.arrayBuffer());
      expect(body.length, url).toBeGreaterThan(0);
      // No source map is served, so none is referred to.
      expect(new TextDecoder().decode(body.slice(-300)), url).not.toMatch(/sourceMappingURL/);
    }
  });

  it('points Swagger UI at /openapi.json, with no online validator', async () => {
    const script = await (await app.request('/docs/init.js')).text();
    expect(script).toContain("url: '/openapi.json'");
    expect(script).toContain('validatorUrl: null');
  });

  it('answers 304 to a browser that has the file already', async () => {
    const first = await app.request('/docs/swagger-ui.css');
    const etag = first.headers.get('etag') ?? '';
    expect(etag).not.toBe('');
    const again = await app.request('/docs/swagger-ui.css', { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
  });

  it('answers 404 problem+json for a file it does not have', async () => {
    for (const path of ['/docs/petstore.json', '/docs/swagger-ui-bundle.js.map', '/docs/..%2Fpackage.json']) {
      const res = await app.request(path);
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-type'), path).toBe('application/problem+json');
    }
  });
});
