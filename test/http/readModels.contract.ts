import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import type { OrderView, PositionView } from '../../src/app/projections.ts';
import { encodeCursor } from '../../src/app/readModels.ts';
import { positionIdFor } from '../../src/domain/ids.ts';
import { testApp } from '../helpers/app.ts';
import { sagaWorld } from '../helpers/saga.ts';

interface Problem {
  readonly status: number;
  readonly detail: string;
  readonly errors?: readonly { field: string; message: string }[];
}

/**
 * The query routes over the read models, held to one contract on each database: what a client
 * sees right after placing an order and once its saga ended, the users' lists with their cursors
 * and filters, and the errors for bad queries and unknown ids.
 */
export function readModelsContract(name: string, open: () => Promise<Database>) {
  describe(`the read-model routes on ${name}`, () => {
    let db: Database;
    let app: ReturnType<typeof testApp>;
    let world: ReturnType<typeof sagaWorld>;
    beforeAll(async () => {
      db = await open();
      app = testApp(db);
      world = sagaWorld(db);
    });
    afterAll(async () => {
      await db?.close();
    });

    const get = async <T>(path: string) => {
      const res = await app.request(path);
      return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as T };
    };

    async function place(
      userId: string,
      order: Partial<{ from_amount: string; from_currency: string; to_currency: string }> = {},
    ): Promise<string> {
      const res = await app.request('/orders', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          user_id: userId,
          from_amount: '1000',
          from_currency: 'USDT',
          to_currency: 'BTC',
          order_type: 'market',
          ...order,
        }),
      });
      expect(res.status).toBe(202);
      return ((await res.json()) as { order_id: string }).order_id;
    }

    describe('when an order is placed and its saga runs', () => {
      it('shows it pending right after the POST, then completed with price, amounts and tx hash, and its position with the totals', async () => {
        const userId = `user-${randomUUID()}`;
        const orderId = await place(userId, { from_amount: '1000.50' });

        const pending = await get<OrderView>(`/orders/${orderId}`);
        expect(pending.status).toBe(200);
        expect(pending.body).toEqual({
          order_id: orderId,
          user_id: userId,
          order_type: 'market',
          status: 'pending',
          from_amount: '1000.5',
          from_currency: 'USDT',
          to_currency: 'BTC',
          quoted_price: null,
          quoted_to_amount: null,
          executed_price: null,
          to_amount: null,
          tx_hash: null,
          position_id: null,
          failure_reason: null,
          failed_step: null,
          created_at: pending.body.created_at,
          updated_at: pending.body.created_at,
          version: 1,
        });
        expect(Date.parse(pending.body.created_at)).not.toBeNaN();

        expect(await world.runner.run(orderId)).toMatchObject({ status: 'completed' });

        const { body: completed } = await get<OrderView>(`/orders/${orderId}`);
        const [executed] = (await world.events(orderId)).filter((e) => e.event_type === 'SwapExecuted');
        if (executed?.event_type !== 'SwapExecuted') throw new Error('no SwapExecuted');
        expect(completed).toMatchObject({
          order_id: orderId,
          status: 'completed',
          from_amount: '1000.5',
          executed_price: executed.event_data.executed_price,
          to_amount: executed.event_data.to_amount,
          tx_hash: executed.event_data.tx_hash,
          position_id: positionIdFor(orderId),
          failure_reason: null,
          version: 5,
        });
        expect(completed.quoted_price).toMatch(/^\d+(\.\d+)?$/);
        expect(completed.quoted_to_amount).toMatch(/^\d+(\.\d+)?$/);
        expect(Date.parse(completed.updated_at)).toBeGreaterThanOrEqual(Date.parse(completed.created_at));

        const position = await get<PositionView>(`/positions/${positionIdFor(orderId)}`);
        expect(position.status).toBe(200);
        expect(position.body).toEqual({
          position_id: positionIdFor(orderId),
          user_id: userId,
          status: 'open',
          from_currency: 'USDT',
          to_currency: 'BTC',
          total_from_amount: '1000.5',
          total_to_amount: executed.event_data.to_amount,
          order_ids: [orderId],
          close_reason: null,
          created_at: position.body.created_at,
          updated_at: position.body.updated_at,
          version: 2,
        });
      });
    });

    describe('when an order fails', () => {
      it('shows it failed with the reason and the step, and its position closed', async () => {
        const userId = `user-${randomUUID()}`;
        // Above the simulated venue's liquidity: the swap is refused after the position opened.
        const orderId = await place(userId, { from_amount: '5000000' });
        expect(await world.runner.run(orderId)).toMatchObject({ status: 'failed' });

        const { body: order } = await get<OrderView>(`/orders/${orderId}`);
        expect(order).toMatchObject({
          status: 'failed',
          failure_reason: 'insufficient_liquidity',
          failed_step: 'execute_swap',
          tx_hash: null,
          executed_price: null,
        });
        const { body: position } = await get<PositionView>(`/positions/${positionIdFor(orderId)}`);
        expect(position).toMatchObject({
          status: 'closed',
          close_reason: 'order_failed',
          total_from_amount: '0',
          total_to_amount: '0',
          order_ids: [orderId],
        });
      });
    });

    describe("when a user's orders are listed", () => {
      async function allPages<T>(path: (cursor?: string) => string, key: 'orders' | 'positions') {
        const pages: T[][] = [];
        let cursor: string | undefined;
        do {
          const { status, body } = await get<Record<string, unknown>>(path(cursor));
          expect(status).toBe(200);
          pages.push(body[key] as T[]);
          cursor = (body.next_cursor as string | null) ?? undefined;
        } while (cursor !== undefined && pages.length < 50);
        return pages;
      }

      it('pages through them newest first, each once, and filters by status', async () => {
        const userId = `user-${randomUUID()}`;
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push(await place(userId, { from_amount: String(100 + i) }));
        await world.runner.run(ids[1] ?? '');
        await world.runner.run(ids[3] ?? '');
        const other = await place(`user-${randomUUID()}`);

        const pages = await allPages<OrderView>(
          (cursor) => `/users/${userId}/orders?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
          'orders',
        );
        expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
        const listed = pages.flat();
        const newestFirst = [...listed].sort(
          (a, b) => b.created_at.localeCompare(a.created_at) || b.order_id.localeCompare(a.order_id),
        );
        expect(listed.map((o) => o.order_id)).toEqual(newestFirst.map((o) => o.order_id));
        expect(new Set(listed.map((o) => o.order_id))).toEqual(new Set(ids));
        expect(listed.map((o) => o.order_id)).not.toContain(other);

        const completed = await get<{ orders: OrderView[]; next_cursor: string | null }>(
          `/users/${userId}/orders?status=completed`,
        );
        expect(new Set(completed.body.orders.map((o) => o.order_id))).toEqual(new Set([ids[1], ids[3]]));
        expect(completed.body.next_cursor).toBeNull();
        const pending = await get<{ orders: OrderView[] }>(
          `/users/${userId}/orders?status=pending&limit=200`,
        );
        expect(pending.body.orders.map((o) => o.status)).toEqual(['pending', 'pending', 'pending']);
      });

      it('skips and repeats nothing when orders are placed between pages', async () => {
        const userId = `user-${randomUUID()}`;
        const before: string[] = [];
        for (let i = 0; i < 6; i++) before.push(await place(userId));

        const first = await get<{ orders: OrderView[]; next_cursor: string }>(
          `/users/${userId}/orders?limit=3`,
        );
        // Newer orders, and one whose event was stored with an older time (a transaction that
        // committed late): the newer ones belong before the first page, the older one after it.
        const newer = [await place(userId), await place(userId)];
        const late = randomUUID();
        await db.query(
          `INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata, created_at)
           VALUES ($1, $2, 'order', 'OrderAccepted', 1, $3::text::jsonb, $4::text::jsonb, now() - interval '1 hour')`,
          [
            randomUUID(),
            late,
            JSON.stringify({
              order_id: late,
              user_id: userId,
              from_amount: '5',
              from_currency: 'USDT',
              to_currency: 'BTC',
              order_type: 'market',
              accepted_at: new Date().toISOString(),
            }),
            JSON.stringify({
              correlation_id: late,
              causation_id: null,
              occurred_at: new Date().toISOString(),
              schema_version: 1,
            }),
          ],
        );
        const rest = await allPages<OrderView>(
          (cursor) => `/users/${userId}/orders?limit=3&cursor=${cursor ?? first.body.next_cursor}`,
          'orders',
        );

        const seen = [...first.body.orders, ...rest.flat()].map((o) => o.order_id);
        expect(new Set(seen).size).toBe(seen.length);
        expect(new Set(seen)).toEqual(new Set([...before, late]));
        expect(seen.at(-1)).toBe(late);
        expect(seen).not.toContain(newer[0]);

        const fresh = await get<{ orders: OrderView[] }>(`/users/${userId}/orders?limit=3`);
        expect(
          fresh.body.orders
            .map((o) => o.order_id)
            .slice(0, 2)
            .sort(),
        ).toEqual([...newer].sort());
      });

      it('lists positions newest first and filters them by status', async () => {
        const userId = `user-${randomUUID()}`;
        const done = await place(userId);
        const failed = await place(userId, { from_amount: '5000000' });
        const waiting = await place(userId);
        await world.runner.run(done);
        await world.runner.run(failed);

        const all = await get<{ positions: PositionView[]; next_cursor: string | null }>(
          `/users/${userId}/positions`,
        );
        expect(all.status).toBe(200);
        expect(all.body.positions.map((p) => p.position_id).sort()).toEqual(
          [positionIdFor(done), positionIdFor(failed)].sort(),
        );
        expect(all.body.positions.map((p) => p.position_id)).not.toContain(positionIdFor(waiting));
        const open = await get<{ positions: PositionView[] }>(`/users/${userId}/positions?status=open`);
        expect(open.body.positions.map((p) => p.position_id)).toEqual([positionIdFor(done)]);
        const closed = await get<{ positions: PositionView[] }>(
          `/users/${userId}/positions?status=closed&limit=1`,
        );
        expect(closed.body.positions.map((p) => p.position_id)).toEqual([positionIdFor(failed)]);

        const pages = await allPages<PositionView>(
          (cursor) => `/users/${userId}/positions?limit=1${cursor ? `&cursor=${cursor}` : ''}`,
          'positions',
        );
        expect(pages.flat().map((p) => p.position_id)).toEqual(all.body.positions.map((p) => p.position_id));
      });

      it('answers an empty list for a user with nothing', async () => {
        for (const list of ['orders', 'positions']) {
          const { status, body } = await get(`/users/nobody-${randomUUID()}/${list}`);
          expect(status).toBe(200);
          expect(body).toEqual({ [list]: [], next_cursor: null });
        }
      });
    });

    describe('when a list query is bad', () => {
      const validCursor = encodeCursor({ created_at: '2026-11-24T12:00:00.000Z', id: randomUUID() });
      it.each([
        ['orders', 'limit=0', 'limit', /integer from 1 to 200; got "0"/],
        ['orders', 'limit=201', 'limit', /integer from 1 to 200/],
        ['orders', 'limit=abc', 'limit', /got "abc"/],
        ['orders', 'limit=1.5', 'limit', /integer/],
        ['orders', 'limit=', 'limit', /integer/],
        ['orders', 'status=open', 'status', /one of pending, processing, completed, failed; got "open"/],
        ['positions', 'status=completed', 'status', /one of open, closed; got "completed"/],
        ['orders', 'status=pending&status=failed', 'status', /given 2 times/],
        ['orders', 'cursor=not-a-cursor!', 'cursor', /not a cursor this API handed out/],
        ['orders', 'cursor=bm90IGpzb24', 'cursor', /not a cursor/],
        [
          'positions',
          `cursor=${encodeCursor({ created_at: '2026-02-30T12:00:00.000Z', id: randomUUID() })}`,
          'cursor',
          /not a cursor/,
        ],
        ['positions', `cursor=${validCursor.slice(0, -3)}`, 'cursor', /not a cursor/],
        [
          'orders',
          `cursor=${Buffer.from('["2026-11-24T12:00:00.000Z","x"]').toString('base64url')}`,
          'cursor',
          /not a cursor/,
        ],
      ])('answers 400 naming the parameter: /users/u/%s?%s', async (list, query, field, message) => {
        const { status, type, body } = await get<Problem>(`/users/u-1/${list}?${query}`);
        expect(status).toBe(400);
        expect(type).toBe('application/problem+json');
        expect(body.errors).toEqual([{ field, message: expect.stringMatching(message) as string }]);
      });

      it('names every bad parameter at once', async () => {
        const { status, body } = await get<Problem>('/users/u-1/orders?limit=0&status=x&cursor=y');
        expect(status).toBe(400);
        expect(body.errors?.map((e) => e.field)).toEqual(['limit', 'status', 'cursor']);
      });

      it('answers 422 naming user_id for a user id that is not text', async () => {
        const { status, body } = await get<Problem>('/users/%ED%A0%80/orders');
        expect(status).toBe(422);
        expect(body.errors?.map((e) => e.field)).toEqual(['user_id']);
      });
    });

    describe('when an id is unknown', () => {
      it.each([
        ['an order', `/orders/${randomUUID()}`],
        ['an order whose id is not a UUID', '/orders/12345'],
        ['a position', `/positions/${randomUUID()}`],
        ['a position whose id is not a UUID', '/positions/nope'],
      ])('answers 404 problem+json for %s', async (_, path) => {
        const { status, type, body } = await get<Problem>(path);
        expect(status).toBe(404);
        expect(type).toBe('application/problem+json');
        expect(body.detail).toMatch(/There is no (order|position) with id/);
      });
    });
  });
}
