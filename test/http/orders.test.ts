import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { positionIdFor } from '../../src/domain/ids.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { testApp } from '../helpers/app.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { aCatalogueEvent } from '../helpers/messages.ts';

const original = {
  user_id: 'user-123',
  from_amount: 1000,
  from_currency: 'USDT',
  to_currency: 'BTC',
  order_type: 'market',
};

describe('the orders API', () => {
  let db: Database;
  let app: ReturnType<typeof testApp>;

  beforeAll(async () => {
    db = await migratedPglite();
    app = testApp(db);
  });
  afterAll(async () => {
    await db.close();
  });

  const post = (body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    app.request('/orders', { method: 'POST', body, headers });
  const postJson = (body: unknown) => post(JSON.stringify(body));

  async function tableSizes() {
    const [row] = await db.query<{ events: number; outbox: number }>(
      'SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM outbox) AS outbox',
    );
    return row;
  }

  describe('when the original example order is posted', () => {
    it('answers 202 with the order id, pending status and a Location, and records OrderAccepted v1', async () => {
      const res = await postJson(original);

      expect(res.status).toBe(202);
      const body = (await res.json()) as { order_id: string; status: string; message: string };
      expect(body.order_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(body).toEqual({
        order_id: body.order_id,
        status: 'pending',
        message: 'Order accepted and will be processed asynchronously',
      });
      expect(res.headers.get('location')).toBe(`/orders/${body.order_id}`);

      const history = await app.request(`/orders/${body.order_id}/events`);
      expect(history.status).toBe(200);
      const { events } = (await history.json()) as { events: Array<Record<string, unknown>> };
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        event_type: 'OrderAccepted',
        version: 1,
        data: {
          order_id: body.order_id,
          user_id: 'user-123',
          from_amount: '1000',
          from_currency: 'USDT',
          to_currency: 'BTC',
          order_type: 'market',
        },
        metadata: { correlation_id: body.order_id, schema_version: 1 },
      });

      const outbox = await db.query<{ event_type: string; published: boolean }>(
        'SELECT event_type, published FROM outbox WHERE aggregate_id = $1',
        [body.order_id],
      );
      expect(outbox).toEqual([{ event_type: 'OrderAccepted', published: false }]);

      const current = await app.request(`/orders/${body.order_id}`);
      expect(current.status).toBe(200);
      expect(await current.json()).toMatchObject({ status: 'pending', order_id: body.order_id, version: 1 });
    });
  });

  describe('when amounts are written in different ways', () => {
    it.each([
      ['a JSON number with all six USDT decimals', '{"from_amount": 1000.123456}', '1000.123456'],
      ['a decimal string', '{"from_amount": "0.5"}', '0.5'],
      ['exponent notation', '{"from_amount": 1e3}', '1000'],
      ['trailing zeros', '{"from_amount": "12.500000"}', '12.5'],
    ])('keeps %s exact', async (_, amountJson, stored) => {
      const body = JSON.stringify({ ...original, from_amount: 0 }).replace(
        '"from_amount":0',
        amountJson.slice(1, -1),
      );
      const res = await post(body);
      expect(res.status).toBe(202);
      const { order_id } = (await res.json()) as { order_id: string };
      const { events } = (await (await app.request(`/orders/${order_id}/events`)).json()) as {
        events: Array<{ data: { from_amount: string } }>;
      };
      expect(events[0]?.data.from_amount).toBe(stored);
    });
  });

  describe('when a field is invalid', () => {
    it.each<[string, Record<string, unknown>, Array<[string, RegExp]>]>([
      [
        'every field is missing',
        {},
        [
          ['user_id', /is required/],
          ['from_amount', /is required/],
          ['from_currency', /is required/],
          ['to_currency', /is required/],
          ['order_type', /is required/],
        ],
      ],
      [
        'fields have the wrong types',
        { user_id: 123, from_amount: true, from_currency: 5, to_currency: ['BTC'], order_type: null },
        [
          ['user_id', /must be a string, got a number/],
          ['from_amount', /must be a number or a decimal string, got a boolean/],
          ['from_currency', /must be a currency code, got a number/],
          ['to_currency', /must be a currency code, got an array/],
          ['order_type', /must be a string, got null/],
        ],
      ],
      ['the amount is zero', { from_amount: 0 }, [['from_amount', /greater than zero/]]],
      ['the amount is negative', { from_amount: -5 }, [['from_amount', /greater than zero/]]],
      ['the amount is "NaN"', { from_amount: 'NaN' }, [['from_amount', /must be a decimal number/]]],
      [
        'the amount is "Infinity"',
        { from_amount: 'Infinity' },
        [['from_amount', /must be a decimal number/]],
      ],
      ['the amount is not numeric', { from_amount: '12abc' }, [['from_amount', /must be a decimal number/]]],
      [
        'the amount has more decimals than USDT',
        { from_amount: '0.1234567' },
        [['from_amount', /7 decimal places; USDT allows at most 6/]],
      ],
      [
        'the amount is absurdly large',
        { from_amount: '2000000000' },
        [['from_amount', /must not exceed 1000000000 USDT/]],
      ],
      [
        'the source currency is unknown',
        { from_currency: 'DOGE' },
        [['from_currency', /not a supported currency: "DOGE" \(supported: USDT, USDC, BTC, ETH\)/]],
      ],
      [
        'both sides are the same currency',
        { to_currency: 'USDT' },
        [['to_currency', /must differ from from_currency \(both are USDT\)/]],
      ],
      [
        'the order type is not market',
        { order_type: 'limit' },
        [['order_type', /"limit" orders are not supported; only "market"/]],
      ],
      ['the user id is blank', { user_id: '   ' }, [['user_id', /must not be empty/]]],
      ['an unknown field is sent', { from_ammount: 5 }, [['from_ammount', /is not a field of an order/]]],
      [
        'several fields fail at once',
        { user_id: '', from_amount: '-1', to_currency: 'XRP' },
        [
          ['user_id', /must not be empty/],
          ['to_currency', /not a supported currency/],
          ['from_amount', /greater than zero/],
        ],
      ],
    ])('answers 422 naming each field when %s, and writes nothing', async (_, change, expected) => {
      const before = await tableSizes();
      const body = Object.keys(change).length === 0 ? {} : { ...original, ...change };

      const res = await postJson(body);

      expect(res.status).toBe(422);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      const problem = (await res.json()) as {
        status: number;
        errors: Array<{ field: string; message: string }>;
      };
      expect(problem.status).toBe(422);
      expect(problem.errors.map((e) => e.field).sort()).toEqual(expected.map(([field]) => field).sort());
      for (const [field, message] of expected) {
        expect(problem.errors.find((e) => e.field === field)?.message).toMatch(message);
      }
      expect(await tableSizes()).toEqual(before);
    });

    it.each([
      ['an array', '[1, 2]'],
      ['null', 'null'],
      ['a string', '"order"'],
    ])('answers 422 when the body is %s rather than an object', async (_, body) => {
      const before = await tableSizes();
      const res = await post(body);
      expect(res.status).toBe(422);
      const problem = (await res.json()) as { errors: Array<{ field: string; message: string }> };
      expect(problem.errors).toEqual([{ field: '', message: 'must be a JSON object' }]);
      expect(await tableSizes()).toEqual(before);
    });
  });

  describe('when the request itself is malformed', () => {
    it.each<[string, () => Response | Promise<Response>, number, RegExp]>([
      ['the JSON is malformed', () => post('{"user_id": "u1", '), 400, /not valid JSON/],
      [
        'the content type is text/plain',
        () => post(JSON.stringify(original), { 'content-type': 'text/plain' }),
        415,
        /application\/json/,
      ],
      [
        'there is no content type',
        // Bytes, not a string: a string body would be labelled text/plain by the Request itself.
        () =>
          app.request('/orders', {
            method: 'POST',
            body: new TextEncoder().encode(JSON.stringify(original)),
          }),
        415,
        /got none/,
      ],
      [
        'the body is over 16 KiB',
        () => postJson({ ...original, user_id: 'x'.repeat(17 * 1024) }),
        413,
        /at most 16384 bytes/,
      ],
      [
        'its Content-Length says it is over 16 KiB',
        () => {
          const body = JSON.stringify({ ...original, user_id: 'x'.repeat(17 * 1024) });
          return app.request('/orders', {
            method: 'POST',
            body,
            headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
          });
        },
        413,
        /at most 16384 bytes/,
      ],
    ])('answers with a problem when %s, and writes nothing', async (_, send, status, detail) => {
      const before = await tableSizes();
      const res = await send();
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      const problem = (await res.json()) as { status: number; detail: string };
      expect(problem.status).toBe(status);
      expect(problem.detail).toMatch(detail);
      expect(await tableSizes()).toEqual(before);
    });
  });

  describe('when a client retries with an Idempotency-Key', () => {
    const withKey = (key: string, body: unknown) =>
      app.request('/orders', {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
      });

    it('places the order once and answers the retry with the same order id', async () => {
      const key = randomUUID();
      const first = await withKey(key, original);
      const retry = await withKey(key, { ...original, from_amount: '1000.000' });

      expect(first.status).toBe(202);
      expect(retry.status).toBe(202);
      const { order_id } = (await first.json()) as { order_id: string };
      expect(((await retry.json()) as { order_id: string }).order_id).toBe(order_id);
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      const [row] = await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM events WHERE aggregate_id = $1',
        [order_id],
      );
      expect(row?.n).toBe(1);
    });

    it('refuses the same key for a different order with 422, and writes nothing', async () => {
      const key = randomUUID();
      await withKey(key, original);
      const before = await tableSizes();

      const res = await withKey(key, { ...original, from_amount: 2000 });

      expect(res.status).toBe(422);
      expect(((await res.json()) as { detail: string }).detail).toMatch(
        /already used with a different request/,
      );
      expect(await tableSizes()).toEqual(before);
    });

    it('keeps keys apart per user', async () => {
      const key = randomUUID();
      const a = (await (await withKey(key, original)).json()) as { order_id: string };
      const b = (await (await withKey(key, { ...original, user_id: 'user-456' })).json()) as {
        order_id: string;
      };
      expect(a.order_id).not.toBe(b.order_id);
    });

    it.each([
      ['empty', ''],
      ['too long', 'k'.repeat(256)],
      ['with spaces', 'my key'],
    ])('answers 422 naming the header when the key is %s', async (_, key) => {
      const before = await tableSizes();
      const res = await withKey(key, original);
      expect(res.status).toBe(422);
      const problem = (await res.json()) as { errors: Array<{ field: string }> };
      expect(problem.errors.map((e) => e.field)).toEqual(['Idempotency-Key']);
      expect(await tableSizes()).toEqual(before);
    });
  });

  describe('when the saga of an order is asked for', () => {
    it('shows the state rebuilt from the events, the pending step, the history and the machine', async () => {
      const placed = await postJson(original);
      const { order_id } = (await placed.json()) as { order_id: string };

      const res = await app.request(`/orders/${order_id}/saga`);

      expect(res.status).toBe(200);
      const view = (await res.json()) as {
        state: unknown;
        status: string;
        pending_step: string;
        events: Array<{ event_type: string; stream: string; version: number }>;
        accepted_at: string;
        deadline: string;
        machine: {
          id: string;
          initial: string;
          children: Array<{ id: string; key: string; type: string; initial: string | null }>;
        };
      };
      expect(view).toMatchObject({ state: 'quotingPrice', status: 'running', pending_step: 'quotingPrice' });
      expect(view.events).toMatchObject([{ event_type: 'OrderAccepted', stream: 'order', version: 1 }]);
      expect(view.machine.id).toBe('orderSaga');
      expect(view.machine.children.map((c) => c.id)).toEqual(
        expect.arrayContaining(['orderSaga.quotingPrice', 'orderSaga.completed', 'orderSaga.compensating']),
      );
      // What a statechart needs: each state's kind, where a compound state starts, the deadline.
      expect(view.machine.initial).toBe('orderSaga.awaitingOrder');
      const byKey = new Map(view.machine.children.map((c) => [c.key, c]));
      expect(byKey.get('executingSwap')).toMatchObject({
        type: 'compound',
        initial: 'orderSaga.executingSwap.sendingSwap',
      });
      expect(byKey.get('completed')).toMatchObject({ type: 'final', initial: null });
      expect(byKey.get('quotingPrice')).toMatchObject({ type: 'atomic' });
      // The default SAGA_DEADLINE_MS (30 s) after acceptance.
      expect(Date.parse(view.deadline) - Date.parse(view.accepted_at)).toBe(30_000);
    });
  });

  describe('when an order does not exist', () => {
    it.each([
      ['an unknown uuid', `/orders/${randomUUID()}/events`],
      ['something that is not an id', '/orders/not-an-id/events'],
      ['the order view of an unknown uuid', `/orders/${randomUUID()}`],
      ['the saga of an unknown uuid', `/orders/${randomUUID()}/saga`],
    ])('answers 404 for %s', async (_, path) => {
      const res = await app.request(path);
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(((await res.json()) as { detail: string }).detail).toMatch(/no order with id/);
    });
  });

  describe("when a position's events are asked for", () => {
    it('answers them in version order', async () => {
      const orderId = randomUUID();
      const positionId = positionIdFor(orderId);
      const created = aCatalogueEvent(orderId, 'PositionCreated');
      await createEventStore(db).append([
        { aggregate_id: positionId, aggregate_type: 'position', expected_version: 0, events: [created] },
      ]);

      const res = await app.request(`/positions/${positionId.toUpperCase()}/events`);

      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        position_id: positionId,
        events: [
          {
            event_id: created.event_id,
            event_type: 'PositionCreated',
            version: 1,
            data: created.event_data,
            metadata: created.metadata,
            recorded_at: expect.any(String) as unknown,
          },
        ],
      });
    });

    it.each([
      ['an unknown uuid', () => randomUUID()],
      [
        'an order id',
        async () => ((await (await postJson(original)).json()) as { order_id: string }).order_id,
      ],
      ['something that is not an id', () => 'not-an-id'],
    ])('answers 404 for %s', async (_, id) => {
      const res = await app.request(`/positions/${await id()}/events`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { detail: string }).detail).toMatch(/no position with id/);
    });
  });

  describe('when health is asked', () => {
    it('reports ok, the database in use and the outbox backlog', async () => {
      const res = await app.request('/health');
      expect(res.status).toBe(200);
      const [row] = await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM outbox WHERE NOT published',
      );
      expect(await res.json()).toEqual({ status: 'ok', database: 'pglite', outbox_unpublished: row?.n });
    });
  });
});
