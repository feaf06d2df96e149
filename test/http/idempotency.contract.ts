import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOrderService,
  DEFAULT_KEY_LEASE_MS,
  DEFAULT_KEY_TTL_MS,
  fingerprintOf,
} from '../../src/app/orders.ts';
import type { PlaceOrder } from '../../src/app/orders.ts';
import { DatabaseUnavailableError } from '../../src/app/ports/database.ts';
import type { Database, Queryable } from '../../src/app/ports/database.ts';
import { ConcurrencyError } from '../../src/app/ports/eventStore.ts';
import { uuidV5 } from '../../src/domain/ids.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { createIdempotencyKeys } from '../../src/infra/idempotencyKeys.ts';
import { testApp } from '../helpers/app.ts';
import { anEvent } from '../helpers/events.ts';
import { testClock } from '../helpers/saga.ts';

/** The namespace order ids were derived from, with the key, before keys were mapped in the database. */
const OLD_ORDER_ID_NAMESPACE = '5b0c1f0e-2c55-4d8e-9a43-7f3a8e2d6b11';

interface Problem {
  type: string;
  status: number;
  detail: string;
}

/** A gate an append waits at until the test opens it: a request made slow without a sleep. */
/** A fresh claim of `idempotency_key` for `order` at `at`, as an API request makes it. */
function aClaim(order: { readonly user_id: string }, idempotency_key: string, at: Date) {
  return {
    user_id: order.user_id,
    idempotency_key,
    fingerprint: fingerprintOf(order as PlaceOrder),
    order_id: randomUUID(),
    token: randomUUID(),
    now: at,
    lease_until: new Date(at.getTime() + DEFAULT_KEY_LEASE_MS),
    expires_at: new Date(at.getTime() + DEFAULT_KEY_TTL_MS),
  };
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  let reached!: () => void;
  const arrived = new Promise<void>((resolve) => {
    reached = resolve;
  });
  return { opened, open, arrived, reached };
}

/**
 * `db` with the round trips counted (statements and transactions) and, while a gate is set, the
 * next append of events held at it: the request is in flight between its claim and its append.
 */
function instrumented(db: Database) {
  const counts = { statements: 0, transactions: 0 };
  let held: ReturnType<typeof gate> | undefined;
  let failNext: Error | undefined;
  const query: Queryable['query'] = async (text, params) => {
    counts.statements++;
    if (text.includes('INSERT INTO events')) {
      const failure = failNext;
      failNext = undefined;
      if (failure) throw failure;
      const current = held;
      held = undefined;
      if (current) {
        current.reached();
        await current.opened;
      }
    }
    return db.query(text, params);
  };
  const wrapped: Database = {
    ...db,
    query,
    exec: (script) => db.exec(script),
    transaction(work) {
      counts.transactions++;
      return db.transaction(work);
    },
  };
  return {
    db: wrapped,
    counts,
    /** Holds the next append until the returned gate is opened. */
    holdNextAppend() {
      held = gate();
      return held;
    },
    /** The next append fails with `error` (its process died, say). */
    failNextAppend(error: Error) {
      failNext = error;
    },
  };
}

/**
 * POST /orders with an Idempotency-Key, as the IETF draft has it, on each database: replay,
 * reuse with another body, a request in flight, a claim left by a dead request, expiry. Run by
 * one test file per database.
 */
export function idempotencyContract(database: string, open: () => Promise<Database>): void {
  describe(`Idempotency-Key on POST /orders, on ${database}`, () => {
    let db: Database;
    let probe: ReturnType<typeof instrumented>;
    const clock = testClock(Date.now());
    let app: ReturnType<typeof testApp>;

    beforeAll(async () => {
      db = await open();
      probe = instrumented(db);
      const orders = createOrderService({
        store: createEventStore(probe.db),
        now: clock.now,
        newId: randomUUID,
        keys: createIdempotencyKeys(probe.db),
      });
      app = testApp(db, { orders });
    });
    afterAll(async () => {
      await db?.close();
    });

    const anOrder = (overrides: Partial<PlaceOrder> = {}) => ({
      user_id: `user-${randomUUID()}`,
      from_amount: '1000',
      from_currency: 'USDT',
      to_currency: 'BTC',
      order_type: 'market',
      ...overrides,
    });

    const post = (key: string | undefined, body: unknown) =>
      app.request('/orders', {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
      });

    /** The orders stored for a user: their ids, oldest first. */
    async function ordersOf(userId: string): Promise<string[]> {
      const rows = await db.query<{ aggregate_id: string }>(
        `SELECT aggregate_id FROM events WHERE event_type = 'OrderAccepted' AND event_data->>'user_id' = $1
         ORDER BY id`,
        [userId],
      );
      return rows.map((row) => row.aggregate_id);
    }

    async function expectProblem(res: Response, status: number, code: string): Promise<Problem> {
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      const problem = (await res.json()) as Problem;
      expect(problem.type).toBe(`urn:market-order-saga:problem:${code}`);
      return problem;
    }

    describe('when the same request is sent again with its key', () => {
      it('answers the original status and body, byte for byte, with Idempotent-Replayed, and places one order', async () => {
        const key = randomUUID();
        const order = anOrder();
        const first = await post(key, order);
        const firstBody = await first.text();

        const retry = await post(key, { ...order, from_amount: '1000.000' });

        expect(first.status).toBe(202);
        expect(first.headers.get('idempotent-replayed')).toBeNull();
        expect(retry.status).toBe(202);
        expect(await retry.text()).toBe(firstBody);
        expect(retry.headers.get('idempotent-replayed')).toBe('true');
        expect(retry.headers.get('location')).toBe(first.headers.get('location'));
        const { order_id } = JSON.parse(firstBody) as { order_id: string };
        expect(await ordersOf(order.user_id)).toEqual([order_id]);
      });
    });

    describe('when the key is sent again with a different body', () => {
      it('answers 422 idempotency_key_reused without naming the first order, and places nothing', async () => {
        const key = randomUUID();
        const order = anOrder();
        const first = (await (await post(key, order)).json()) as { order_id: string };

        const res = await post(key, { ...order, from_amount: '2000' });

        const problem = await expectProblem(res, 422, 'idempotency_key_reused');
        expect(problem.detail).toMatch(/already used with a different request/);
        expect(JSON.stringify(problem)).not.toContain(first.order_id);
        expect(await ordersOf(order.user_id)).toEqual([first.order_id]);
      });
    });

    describe('when the first request with the key is still in flight', () => {
      it('answers 409 idempotency_key_in_flight with Retry-After to the same request, 422 to another', async () => {
        const key = randomUUID();
        const order = anOrder();
        const slow = probe.holdNextAppend();
        const first = post(key, order);
        await slow.arrived;

        const same = await post(key, order);
        const other = await post(key, { ...order, to_currency: 'ETH' });

        const problem = await expectProblem(same, 409, 'idempotency_key_in_flight');
        expect(problem.detail).toMatch(/still being processed/);
        expect(same.headers.get('retry-after')).toBe('1');
        await expectProblem(other, 422, 'idempotency_key_reused');
        expect(await ordersOf(order.user_id)).toEqual([]);

        slow.open();
        const answered = await first;
        expect(answered.status).toBe(202);
        const { order_id } = (await answered.json()) as { order_id: string };
        const after = await post(key, order);
        expect(after.status).toBe(202);
        expect(after.headers.get('idempotent-replayed')).toBe('true');
        expect(await ordersOf(order.user_id)).toEqual([order_id]);
      });
    });

    describe('when the request that claimed a key died before placing its order', () => {
      it('answers 409 until its lease runs out, then the next request with the key places the order', async () => {
        const key = randomUUID();
        const order = anOrder();
        const at = clock.now();
        // What a request that died right after its claim leaves behind.
        const dead = await createIdempotencyKeys(db).claim(aClaim(order, key, at));
        expect(dead.state).toBe('claimed');

        await expectProblem(await post(key, order), 409, 'idempotency_key_in_flight');
        clock.advance(DEFAULT_KEY_LEASE_MS);
        const res = await post(key, order);

        expect(res.status).toBe(202);
        expect(res.headers.get('idempotent-replayed')).toBeNull();
        const { order_id } = (await res.json()) as { order_id: string };
        expect(order_id).toBe(dead.order_id);
        expect(await ordersOf(order.user_id)).toEqual([order_id]);
      });

      it('when the first request was only slow and places the order after the takeover, there is still one order', async () => {
        const key = randomUUID();
        const order = anOrder();
        const slow = probe.holdNextAppend();
        const first = post(key, order);
        await slow.arrived;
        clock.advance(DEFAULT_KEY_LEASE_MS);

        const takeover = await post(key, order);
        slow.open();
        const late = await first;

        expect(takeover.status).toBe(202);
        expect(late.status).toBe(202);
        const body = await takeover.text();
        expect(await late.text()).toBe(body);
        expect(late.headers.get('idempotent-replayed')).toBe('true');
        expect(await ordersOf(order.user_id)).toEqual([(JSON.parse(body) as { order_id: string }).order_id]);
      });

      it('gives the key back when its order could not be placed, so a retry need not wait for the lease', async () => {
        const key = randomUUID();
        const order = anOrder();
        probe.failNextAppend(new Error('the append failed'));

        const failed = await post(key, order);
        const retry = await post(key, order);

        expect(failed.status).toBe(500);
        expect(retry.status).toBe(202);
        expect(retry.headers.get('idempotent-replayed')).toBeNull();
        expect(await ordersOf(order.user_id)).toHaveLength(1);
      });
      it('keeps the key in flight when the database went away during the append, until its lease runs out', async () => {
        const key = randomUUID();
        const order = anOrder();
        probe.failNextAppend(new DatabaseUnavailableError('The database is unavailable: connection reset'));

        const cut = await post(key, order);
        const retry = await post(key, order);
        clock.advance(DEFAULT_KEY_LEASE_MS);
        const later = await post(key, order);

        expect(cut.status).toBe(503);
        await expectProblem(retry, 409, 'idempotency_key_in_flight');
        expect(later.status).toBe(202);
        expect(await ordersOf(order.user_id)).toHaveLength(1);
      });
    });

    describe('when a key has expired', () => {
      it('places a new order with it, whatever the body, and the sweep deletes expired keys', async () => {
        const key = randomUUID();
        const order = anOrder();
        const first = (await (await post(key, order)).json()) as { order_id: string };
        clock.advance(DEFAULT_KEY_TTL_MS - 1);
        expect((await post(key, order)).headers.get('idempotent-replayed')).toBe('true');
        clock.advance(1);

        const again = await post(key, { ...order, from_amount: '5' });

        expect(again.status).toBe(202);
        expect(again.headers.get('idempotent-replayed')).toBeNull();
        const second = (await again.json()) as { order_id: string };
        expect(second.order_id).not.toBe(first.order_id);
        expect(await ordersOf(order.user_id)).toEqual([first.order_id, second.order_id]);

        const keys = createIdempotencyKeys(db);
        await keys.deleteExpired(new Date(clock.now().getTime() + DEFAULT_KEY_TTL_MS), 1_000_000);
        const left = await db.query('SELECT 1 FROM idempotency_keys WHERE user_id = $1', [order.user_id]);
        expect(left).toEqual([]);
      });
    });

    describe('the append that places a keyed order', () => {
      it('marks the key done only when its events are stored', async () => {
        const keys = createIdempotencyKeys(db);
        const store = createEventStore(db);
        const order = anOrder();
        const at = clock.now();
        const claim = aClaim(order, randomUUID(), at);
        const { order_id } = await keys.claim(claim);
        const append = (expected_version: number) =>
          store.append(
            [
              {
                aggregate_id: order_id,
                aggregate_type: 'order',
                expected_version,
                events: [anEvent(order_id)],
              },
            ],
            {
              idempotencyKeys: [
                {
                  user_id: order.user_id,
                  idempotency_key: claim.idempotency_key,
                  order_id,
                  response: { status: 202, body: '{"order_id":"x"}' },
                  fingerprint: claim.fingerprint,
                  claimed_by: claim.token,
                  created_at: claim.now,
                  expires_at: claim.expires_at,
                },
              ],
            },
          );

        await expect(append(1)).rejects.toThrow(ConcurrencyError);
        expect(await keys.claim({ ...claim, token: randomUUID() })).toMatchObject({ state: 'in_flight' });
        await append(0);
        expect(await keys.claim({ ...claim, token: randomUUID() })).toEqual({
          state: 'done',
          order_id,
          fingerprint: claim.fingerprint,
          response: { status: 202, body: '{"order_id":"x"}' },
        });
      });

      it('writes the key done as claimed when its row is gone, and leaves a row another order holds', async () => {
        const keys = createIdempotencyKeys(db);
        const store = createEventStore(db);
        const at = clock.now();
        const completion = (
          order: ReturnType<typeof anOrder>,
          order_id: string,
          idempotency_key: string,
        ) => ({
          user_id: order.user_id,
          idempotency_key,
          order_id,
          response: { status: 202, body: JSON.stringify({ order_id }) },
          fingerprint: fingerprintOf(order as PlaceOrder),
          claimed_by: randomUUID(),
          created_at: at,
          expires_at: new Date(at.getTime() + DEFAULT_KEY_TTL_MS),
        });
        const stream = (order_id: string) => ({
          aggregate_id: order_id,
          aggregate_type: 'order' as const,
          expected_version: 0,
          events: [anEvent(order_id)],
        });
        // Gone: never claimed here (as if swept while its request stalled).
        const gone = anOrder();
        const goneId = randomUUID();
        const goneKey = randomUUID();
        // Held by another order: claimed, then the append comes with another order id.
        const held = anOrder();
        const heldKey = randomUUID();
        const claimed = await keys.claim(aClaim(held, heldKey, at));
        const otherId = randomUUID();

        await store.append([stream(goneId), stream(otherId)], {
          idempotencyKeys: [completion(gone, goneId, goneKey), completion(held, otherId, heldKey)],
        });

        const probe = (order: ReturnType<typeof anOrder>, idempotency_key: string) =>
          keys.claim(aClaim(order, idempotency_key, at));
        expect(await probe(gone, goneKey)).toEqual({
          state: 'done',
          order_id: goneId,
          fingerprint: fingerprintOf(gone as PlaceOrder),
          response: { status: 202, body: JSON.stringify({ order_id: goneId }) },
        });
        expect(await probe(held, heldKey)).toMatchObject({ state: 'in_flight', order_id: claimed.order_id });
      });
    });

    describe('order ids', () => {
      it('are random: two users with the same key get different ids, neither the old uuidV5 of user and key', async () => {
        const key = randomUUID();
        const [a, b] = [anOrder(), anOrder()];
        const ids = await Promise.all(
          [a, b].map(
            async (order) => ((await (await post(key, order)).json()) as { order_id: string }).order_id,
          ),
        );

        expect(ids[0]).not.toBe(ids[1]);
        for (const [i, order] of [a, b].entries()) {
          expect(ids[i]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
          expect(ids[i]).not.toBe(uuidV5(`${order.user_id}\n${key}`, OLD_ORDER_ID_NAMESPACE));
        }
      });
    });

    describe('round trips to the database per POST', () => {
      it('are 1 statement without a key, 2 with a new key, 1 for a replay, and no explicit transaction', async () => {
        const order = anOrder();
        const key = randomUUID();
        const cost = async (send: () => Response | Promise<Response>) => {
          const before = { ...probe.counts };
          expect((await send()).status).toBe(202);
          return {
            statements: probe.counts.statements - before.statements,
            transactions: probe.counts.transactions - before.transactions,
          };
        };

        expect(await cost(() => post(undefined, order))).toEqual({ statements: 1, transactions: 0 });
        expect(await cost(() => post(key, order))).toEqual({ statements: 2, transactions: 0 });
        expect(await cost(() => post(key, order))).toEqual({ statements: 1, transactions: 0 });
      });
    });
  });
}
