import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrderService } from '../../src/app/orders.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { createIdempotencyKeys } from '../../src/infra/idempotencyKeys.ts';
import { createLogger, logContext } from '../../src/infra/logger.ts';
import { testApp } from '../helpers/app.ts';
import { migratedPglite } from '../helpers/databases.ts';

const anOrder = (userId: string) => ({
  user_id: userId,
  from_amount: '10',
  from_currency: 'USDT',
  to_currency: 'BTC',
  order_type: 'market',
});

interface LogLine {
  readonly msg: string;
  readonly request_id?: string;
  readonly order_id?: string;
}

describe('request ids and the per-user rate limit', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db.close();
  });

  const post = async (app: ReturnType<typeof testApp>, body: unknown, headers: Record<string, string> = {}) =>
    app.request('/orders', {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
    });

  describe('X-Request-Id', () => {
    /** The app with every line logged, the order service's and the event store's included, captured. */
    function capturingApp() {
      const lines: LogLine[] = [];
      const logger = createLogger('debug', {
        write: (line: string) => lines.push(JSON.parse(line) as LogLine),
      });
      const orders = createOrderService({
        store: createEventStore(db, { logger }),
        now: () => new Date(),
        newId: randomUUID,
        keys: createIdempotencyKeys(db),
        logger,
      });
      return { lines, app: testApp(db, { orders, logger, logContext }) };
    }

    it("is the client's when valid, returned, and on every line logged for the request, down to the event store", async () => {
      const { lines, app } = capturingApp();
      const requestId = `trace-${randomUUID()}`;

      const res = await post(app, anOrder(`user-${randomUUID()}`), { 'x-request-id': requestId });

      expect(res.status).toBe(202);
      expect(res.headers.get('x-request-id')).toBe(requestId);
      const { order_id } = (await res.json()) as { order_id: string };
      expect(lines.map((line) => line.msg)).toEqual(
        expect.arrayContaining(['events appended', 'order accepted']),
      );
      expect(lines.find((line) => line.msg === 'order accepted')?.order_id).toBe(order_id);
      for (const line of lines) expect(line.request_id).toBe(requestId);
    });

    it('keeps concurrent requests apart: each line carries the id of the request that logged it', async () => {
      const { lines, app } = capturingApp();
      const sent = Array.from({ length: 10 }, () => `trace-${randomUUID()}`);

      const responses = await Promise.all(
        sent.map((id) => post(app, anOrder(`user-${randomUUID()}`), { 'x-request-id': id })),
      );

      const orderOf = new Map<string, string>();
      for (const [i, res] of responses.entries()) {
        expect(res.headers.get('x-request-id')).toBe(sent[i]);
        orderOf.set(sent[i] ?? '', ((await res.json()) as { order_id: string }).order_id);
      }
      const accepted = lines.filter((line) => line.msg === 'order accepted');
      expect(accepted).toHaveLength(10);
      for (const line of accepted) expect(line.order_id).toBe(orderOf.get(line.request_id ?? ''));
      for (const line of lines) expect(sent).toContain(line.request_id);
    });

    it.each([
      ['too long', 'r'.repeat(256)],
      ['with characters outside [A-Za-z0-9_=-]', 'evil id; drop'],
    ])('is replaced by a new UUID when the one sent is %s', async (_, sent) => {
      const { app } = capturingApp();
      const res = await post(app, anOrder(`user-${randomUUID()}`), { 'x-request-id': sent });
      expect(res.headers.get('x-request-id')).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
    });

    it.each([
      [
        'a 404 for an unknown route',
        (app: ReturnType<typeof testApp>) =>
          app.request('/nowhere', { headers: { 'x-request-id': 'r-404' } }),
        'r-404',
        404,
      ],
      [
        'a 404 for an unknown order',
        (app: ReturnType<typeof testApp>) =>
          app.request(`/orders/${randomUUID()}`, { headers: { 'x-request-id': 'r-order' } }),
        'r-order',
        404,
      ],
      [
        'a 422 for a bad order',
        (app: ReturnType<typeof testApp>) => post(app, {}, { 'x-request-id': 'r-422' }),
        'r-422',
        422,
      ],
      [
        'a 400 for malformed JSON',
        (app: ReturnType<typeof testApp>) =>
          app.request('/orders', {
            method: 'POST',
            body: '{',
            headers: { 'content-type': 'application/json', 'x-request-id': 'r-400' },
          }),
        'r-400',
        400,
      ],
      [
        'the health check',
        (app: ReturnType<typeof testApp>) =>
          app.request('/health', { headers: { 'x-request-id': 'r-health' } }),
        'r-health',
        200,
      ],
    ])('is returned on %s', async (_, send, id, status) => {
      const { app } = capturingApp();
      const res = await send(app);
      expect(res.status).toBe(status);
      expect(res.headers.get('x-request-id')).toBe(id);
    });

    it('is generated when none is sent, and on the lines of an unhandled error', async () => {
      const lines: LogLine[] = [];
      const logger = createLogger('info', {
        write: (line: string) => lines.push(JSON.parse(line) as LogLine),
      });
      const failing = createOrderService({
        store: {
          ...createEventStore(db),
          append: () => Promise.reject(new Error('the disk is on fire')),
        },
        now: () => new Date(),
        newId: randomUUID,
      });
      const app = testApp(db, { orders: failing, logger, logContext });

      const res = await post(app, anOrder(`user-${randomUUID()}`));

      expect(res.status).toBe(500);
      const generated = res.headers.get('x-request-id');
      expect(generated).toMatch(/^[0-9a-f-]{36}$/);
      expect(lines).toEqual([expect.objectContaining({ msg: 'unhandled error', request_id: generated })]);
    });
  });

  describe('the per-user limit on POST /orders', () => {
    it('answers 429 rate_limited with Retry-After past the limit, writes nothing, and leaves other users alone', async () => {
      const app = testApp(db, { orderRateLimit: { perSecond: 2, burst: 0 } });
      const user = `user-${randomUUID()}`;

      const allowed = [await post(app, anOrder(user)), await post(app, anOrder(user))];
      const refused = await post(app, anOrder(user));
      const other = await post(app, anOrder(`user-${randomUUID()}`));

      expect(allowed.map((res) => res.status)).toEqual([202, 202]);
      expect(refused.status).toBe(429);
      expect(refused.headers.get('content-type')).toBe('application/problem+json');
      expect(refused.headers.get('retry-after')).toBe('1');
      const problem = (await refused.json()) as { type: string; detail: string };
      expect(problem.type).toBe('urn:market-order-saga:problem:rate_limited');
      expect(problem.detail).toMatch(/at most 2 orders per second/);
      expect(other.status).toBe(202);
      const [row] = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM events WHERE event_data->>'user_id' = $1`,
        [user],
      );
      expect(row?.n).toBe(2);
    });

    it('lets a burst through above the rate, then answers 429 with the wait until the burst window frees', async () => {
      const app = testApp(db, { orderRateLimit: { perSecond: 1, burst: 2 } });
      const user = `user-${randomUUID()}`;

      const responses = [];
      for (let i = 0; i < 4; i++) responses.push(await post(app, anOrder(user)));

      expect(responses.map((res) => res.status)).toEqual([202, 202, 202, 429]);
      expect(Number(responses[3]?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    });

    it('is off unless configured', async () => {
      const app = testApp(db);
      const user = `user-${randomUUID()}`;
      const statuses = await Promise.all(
        Array.from({ length: 20 }, async () => (await post(app, anOrder(user))).status),
      );
      expect(statuses).toEqual(Array(20).fill(202));
    });
  });
});
