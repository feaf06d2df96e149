import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOrderService,
  DEFAULT_KEY_LEASE_MS,
  DEFAULT_KEY_TTL_MS,
  fingerprintOf,
} from '../../src/app/orders.ts';
import type { PlaceOrder } from '../../src/app/orders.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { uuidV5 } from '../../src/domain/ids.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { createIdempotencyKeys } from '../../src/infra/idempotencyKeys.ts';
import { testApp } from '../helpers/app.ts';
import { anEvent } from '../helpers/events.ts';
import { realClock } from '../helpers/saga.ts';

/** The namespace of keyed order ids before migration 011 (`git show f7a78a7:src/app/orders.ts`). */
const OLD_ORDER_ID_NAMESPACE = '5b0c1f0e-2c55-4d8e-9a43-7f3a8e2d6b11';
/** The body of the 202 the API answered before the upgrade. */
const oldAnswer = (orderId: string) =>
  JSON.stringify({
    order_id: orderId,
    status: 'pending',
    message: 'Order accepted and will be processed asynchronously',
  });
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Problem {
  type: string;
  status: number;
}

/**
 * A POST /orders with an Idempotency-Key sent before the upgrade to random order ids (migration
 * 011), when its id was uuidV5(user, key), and retried after it: it meets the order it placed.
 * Run by one test file per database.
 */
export function legacyIdempotencyContract(database: string, open: () => Promise<Database>): void {
  describe(`Idempotency-Key retried across the upgrade to random order ids, on ${database}`, () => {
    let db: Database;
    const counts = { statements: 0 };

    beforeAll(async () => {
      db = await open();
    });
    afterAll(async () => {
      await db?.close();
    });

    /**
     * The API with a keyed order intake on `clock`: the real clock (events' created_at is the
     * database's), which a test shifts to make a stored order old. Statements are counted.
     */
    function api(clock = realClock()) {
      const counted: Database = {
        ...db,
        query: (text, params) => {
          counts.statements++;
          return db.query(text, params);
        },
        exec: (script) => db.exec(script),
        transaction: (work) => db.transaction(work),
      };
      const orders = createOrderService({
        store: createEventStore(counted),
        now: clock.now,
        newId: randomUUID,
        keys: createIdempotencyKeys(counted),
      });
      const app = testApp(db, { orders });
      return {
        clock,
        post: (key: string, body: unknown) =>
          app.request('/orders', {
            method: 'POST',
            body: JSON.stringify(body),
            headers: { 'content-type': 'application/json', 'idempotency-key': key },
          }),
      };
    }

    const anOrder = (overrides: Partial<PlaceOrder> = {}): PlaceOrder => ({
      user_id: `user-${randomUUID()}`,
      from_amount: '1000',
      from_currency: 'USDT',
      to_currency: 'BTC',
      order_type: 'market',
      ...overrides,
    });

    /** What the API did before the upgrade: an OrderAccepted stream under uuidV5(user, key). */
    async function placedBeforeUpgrade(order: PlaceOrder, key: string): Promise<string> {
      const orderId = uuidV5(`${order.user_id}\n${key}`, OLD_ORDER_ID_NAMESPACE);
      await createEventStore(db).append([
        {
          aggregate_id: orderId,
          aggregate_type: 'order',
          expected_version: 0,
          events: [anEvent(orderId, 'OrderAccepted', { ...order })],
        },
      ]);
      return orderId;
    }

    /** The orders stored for a user: their ids, oldest first. */
    async function ordersOf(userId: string): Promise<string[]> {
      const rows = await db.query<{ aggregate_id: string }>(
        `SELECT aggregate_id FROM events WHERE event_type = 'OrderAccepted' AND event_data->>'user_id' = $1
         ORDER BY id`,
        [userId],
      );
      return rows.map((row) => row.aggregate_id);
    }

    async function expectReused(res: Response): Promise<void> {
      expect(res.status).toBe(422);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(((await res.json()) as Problem).type).toBe(
        'urn:market-order-saga:problem:idempotency_key_reused',
      );
    }

    describe('when the same request is retried after the upgrade', () => {
      it('replays the order placed before it (same id, the old answer, Idempotent-Replayed) and places none', async () => {
        const { post } = api();
        const order = anOrder();
        const key = randomUUID();
        const legacyId = await placedBeforeUpgrade(order, key);

        const retry = await post(key, { ...order, from_amount: '1000.00' });

        expect(retry.status).toBe(202);
        expect(retry.headers.get('idempotent-replayed')).toBe('true');
        expect(retry.headers.get('location')).toBe(`/orders/${legacyId}`);
        expect(await retry.text()).toBe(oldAnswer(legacyId));
        expect(await ordersOf(order.user_id)).toEqual([legacyId]);
      });

      it('records the key with that order: later retries are replayed in one statement', async () => {
        const { post } = api();
        const order = anOrder();
        const key = randomUUID();
        const legacyId = await placedBeforeUpgrade(order, key);
        await post(key, order);

        const before = counts.statements;
        const again = await post(key, order);

        expect(counts.statements - before).toBe(1);
        expect(again.status).toBe(202);
        expect(again.headers.get('idempotent-replayed')).toBe('true');
        expect(await again.text()).toBe(oldAnswer(legacyId));
        await expectReused(await post(key, { ...order, to_currency: 'ETH' }));
        expect(await ordersOf(order.user_id)).toEqual([legacyId]);
      });

      it('places one order when many retries arrive at once: each is replayed or told it is in flight', async () => {
        const { post } = api();
        const order = anOrder();
        const key = randomUUID();
        const legacyId = await placedBeforeUpgrade(order, key);

        const answers = await Promise.all(Array.from({ length: 20 }, async () => post(key, order)));

        const statuses = answers.map((res) => res.status);
        expect(statuses.every((status) => status === 202 || status === 409)).toBe(true);
        for (const res of answers.filter((answer) => answer.status === 202)) {
          expect(res.headers.get('idempotent-replayed')).toBe('true');
          expect(await res.text()).toBe(oldAnswer(legacyId));
        }
        expect(await (await post(key, order)).text()).toBe(oldAnswer(legacyId));
        expect(await ordersOf(order.user_id)).toEqual([legacyId]);
      });
    });

    describe('when the key is retried after the upgrade with a different body', () => {
      it('answers 422 idempotency_key_reused, places nothing, and the key still replays the first order', async () => {
        const { post } = api();
        const order = anOrder();
        const key = randomUUID();
        const legacyId = await placedBeforeUpgrade(order, key);

        await expectReused(await post(key, { ...order, from_amount: '2000' }));
        // The refused request's claim was given back: a 422 again, not a 409 for a lease.
        await expectReused(await post(key, { ...order, from_amount: '2000' }));
        const retry = await post(key, order);

        expect(retry.status).toBe(202);
        expect(retry.headers.get('idempotent-replayed')).toBe('true');
        expect(await retry.text()).toBe(oldAnswer(legacyId));
        expect(await ordersOf(order.user_id)).toEqual([legacyId]);
      });
    });

    describe('when the order placed before the upgrade is older than the key TTL', () => {
      it('places a new order under a random id: the key is free', async () => {
        const { post, clock } = api();
        const order = anOrder();
        const key = randomUUID();
        const legacyId = await placedBeforeUpgrade(order, key);
        clock.advance(DEFAULT_KEY_TTL_MS);

        const res = await post(key, order);

        expect(res.status).toBe(202);
        expect(res.headers.get('idempotent-replayed')).toBeNull();
        const { order_id } = (await res.json()) as { order_id: string };
        expect(order_id).toMatch(UUID_V4);
        expect(await ordersOf(order.user_id)).toEqual([legacyId, order_id]);
      });
    });

    describe('marking a claim done without an append (complete)', () => {
      it('marks it only for the request that holds it', async () => {
        const keys = createIdempotencyKeys(db);
        const order = anOrder();
        const at = new Date();
        const claim = {
          user_id: order.user_id,
          idempotency_key: randomUUID(),
          fingerprint: fingerprintOf(order),
          order_id: randomUUID(),
          token: randomUUID(),
          now: at,
          lease_until: new Date(at.getTime() + DEFAULT_KEY_LEASE_MS),
          expires_at: new Date(at.getTime() + DEFAULT_KEY_TTL_MS),
        };
        await keys.claim(claim);
        const done = {
          user_id: claim.user_id,
          idempotency_key: claim.idempotency_key,
          order_id: claim.order_id,
          response: { status: 202, body: '{"order_id":"x"}' },
          expires_at: claim.expires_at,
        };

        expect(await keys.complete({ ...done, token: randomUUID() })).toBe(false);
        expect(await keys.claim({ ...claim, token: randomUUID() })).toMatchObject({ state: 'in_flight' });
        expect(await keys.complete({ ...done, token: claim.token })).toBe(true);
        expect(await keys.claim({ ...claim, token: randomUUID() })).toEqual({
          state: 'done',
          order_id: claim.order_id,
          fingerprint: claim.fingerprint,
          response: done.response,
        });
      });
    });
  });
}
