import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchedClaims, batchedOrderAppends } from '../../src/app/intakeBatcher.ts';
import { createOrderService } from '../../src/app/orders.ts';
import type { PlaceOrder } from '../../src/app/orders.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { ConcurrencyError } from '../../src/app/ports/eventStore.ts';
import type { KeyClaim } from '../../src/app/ports/idempotencyKeys.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { createIdempotencyKeys } from '../../src/infra/idempotencyKeys.ts';
import { countRows, counted, newId } from '../helpers/databases.ts';
import { anEvent } from '../helpers/events.ts';

const anOrder = (): PlaceOrder => ({
  user_id: `batch-${newId()}`,
  from_amount: '100',
  from_currency: 'USDT',
  to_currency: 'BTC',
  order_type: 'market',
});

function aClaim(user: string, key: string): KeyClaim {
  const now = new Date();
  return {
    user_id: user,
    idempotency_key: key,
    fingerprint: 'f'.repeat(64),
    order_id: newId(),
    token: newId(),
    now,
    lease_until: new Date(now.getTime() + 5_000),
    expires_at: new Date(now.getTime() + 60_000),
  };
}

/**
 * Group commit of order intake (src/app/intakeBatcher.ts) on a real database: one lane, so the
 * first request goes alone and every other one sent meanwhile joins the next statement.
 */
export function intakeBatcherContract(adapter: string, open: () => Promise<Database>): void {
  describe(`intake group commit on ${adapter}`, () => {
    let raw: Database;

    beforeAll(async () => {
      raw = await open();
    });
    afterAll(async () => {
      await raw?.close();
    });

    describe('when many keyed orders arrive at once', () => {
      it('places each with its own key and response in fewer statements than one per step', async () => {
        const { db, count } = counted(raw);
        const orders = createOrderService({
          store: createEventStore(db),
          keys: createIdempotencyKeys(db),
          now: () => new Date(),
          newId,
          batching: { lanes: 1 },
        });
        const requests = Array.from({ length: 20 }, () => ({ order: anOrder(), key: newId() }));
        const accepted = await Promise.all(
          requests.map(({ order, key }) =>
            orders.accept(order, {
              causationId: null,
              idempotency: { key, respond: (id) => ({ status: 202, body: `{"order_id":"${id}"}` }) },
            }),
          ),
        );

        // Two statements a request without batching: claim, append.
        expect(count.statements).toBeLessThanOrEqual(6);
        const ids = accepted.map((a) => a.order_id);
        expect(new Set(ids).size).toBe(20);
        expect(await countRows(raw, 'events', ids)).toBe(20);
        for (const [i, { order, key }] of requests.entries()) {
          const [row] = await raw.query<{ state: string; order_id: string; response_body: string }>(
            'SELECT state, order_id, response_body FROM idempotency_keys WHERE user_id = $1 AND idempotency_key = $2',
            [order.user_id, key],
          );
          expect(row).toEqual({ state: 'done', order_id: ids[i], response_body: `{"order_id":"${ids[i]}"}` });
          const [event] = await raw.query<{ user_id: string }>(
            `SELECT event_data->>'user_id' AS user_id FROM events WHERE aggregate_id = $1`,
            [ids[i]],
          );
          expect(event?.user_id).toBe(order.user_id);
        }
      });

      it('answers a retry sent with its first request: one order, the retry in flight or replayed', async () => {
        const orders = createOrderService({
          store: createEventStore(raw),
          keys: createIdempotencyKeys(raw),
          now: () => new Date(),
          newId,
          batching: { lanes: 1 },
        });
        const order = anOrder();
        const key = newId();
        const send = () =>
          orders.accept(order, {
            causationId: null,
            idempotency: { key, respond: (id) => ({ status: 202, body: id }) },
          });
        const results = await Promise.allSettled([send(), send(), send(), send()]);
        const placed = results.flatMap((r) =>
          r.status === 'fulfilled' && !r.value.replayed ? [r.value] : [],
        );
        expect(placed).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'fulfilled') expect(r.value.order_id).toBe(placed[0]?.order_id);
          else expect((r.reason as Error).name).toBe('IdempotencyKeyInFlightError');
        }
      });
    });

    describe('when one stream of a batch conflicts', () => {
      it('appends the others and gives the conflict to its own request only', async () => {
        const store = createEventStore(raw);
        const taken = newId();
        await store.append([
          { aggregate_id: taken, aggregate_type: 'order', expected_version: 0, events: [anEvent(taken)] },
        ]);
        const append = batchedOrderAppends(store, { lanes: 1 });
        const first = newId();
        const others = [newId(), taken, newId()];
        const results = await Promise.allSettled(
          [first, ...others].map((id) =>
            append({
              stream: {
                aggregate_id: id,
                aggregate_type: 'order',
                expected_version: 0,
                events: [anEvent(id)],
              },
            }),
          ),
        );
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
        expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(ConcurrencyError);
        expect(await countRows(raw, 'events', [first, ...others])).toBe(4);
      });
    });

    describe('when one member of a batch has data the database refuses', () => {
      it('stores the others; only that request fails', async () => {
        const store = createEventStore(raw);
        const append = batchedOrderAppends(store, { lanes: 1 });
        const good = [newId(), newId(), newId()];
        const bad = { ...anEvent(newId()), event_id: 'not-a-uuid' };
        const results = await Promise.allSettled([
          append({
            stream: {
              aggregate_id: good[0]!,
              aggregate_type: 'order',
              expected_version: 0,
              events: [anEvent(good[0]!)],
            },
          }),
          append({
            stream: {
              aggregate_id: good[1]!,
              aggregate_type: 'order',
              expected_version: 0,
              events: [anEvent(good[1]!)],
            },
          }),
          append({
            stream: { aggregate_id: newId(), aggregate_type: 'order', expected_version: 0, events: [bad] },
          }),
          append({
            stream: {
              aggregate_id: good[2]!,
              aggregate_type: 'order',
              expected_version: 0,
              events: [anEvent(good[2]!)],
            },
          }),
        ]);
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
        expect(await countRows(raw, 'events', good)).toBe(3);
      });

      it('claims the other keys; only that claim fails', async () => {
        const claim = batchedClaims(createIdempotencyKeys(raw), { lanes: 1 });
        const user = `batch-${newId()}`;
        const results = await Promise.allSettled([
          claim(aClaim(user, newId())),
          claim(aClaim(user, newId())),
          claim(aClaim('u'.repeat(200), newId())), // user_id is VARCHAR(128)
          claim(aClaim(user, newId())),
        ]);
        expect(results.map((r) => (r.status === 'fulfilled' ? r.value.state : 'rejected'))).toEqual([
          'claimed',
          'claimed',
          'rejected',
          'claimed',
        ]);
      });
    });

    describe('when a batch holds the same key twice', () => {
      it('claims it for the first request; the second finds it in flight', async () => {
        const claim = batchedClaims(createIdempotencyKeys(raw), { lanes: 1 });
        const user = `batch-${newId()}`;
        const key = newId();
        const [, first, second, other] = await Promise.all([
          claim(aClaim(user, newId())),
          claim(aClaim(user, key)),
          claim(aClaim(user, key)),
          claim(aClaim(user, newId())),
        ]);
        expect(first).toMatchObject({ state: 'claimed' });
        expect(second).toMatchObject({ state: 'in_flight', order_id: first?.order_id });
        expect(other).toMatchObject({ state: 'claimed' });
      });
    });

    describe('when streams of several events go in one batch', () => {
      it('keeps each stream numbered in the order given and answers each with its own events', async () => {
        const store = createEventStore(raw);
        const append = batchedOrderAppends(store, { lanes: 1 });
        const ids = [newId(), newId(), newId()];
        const results = await Promise.all(
          ids.map((id) =>
            append({
              stream: {
                aggregate_id: id,
                aggregate_type: 'order',
                expected_version: 0,
                events: [anEvent(id), anEvent(id, 'PriceQuoted')],
              },
            }),
          ),
        );
        for (const [i, id] of ids.entries()) {
          const result = results[i];
          expect(result?.status).toBe('appended');
          if (result?.status !== 'appended') continue;
          expect(result.events.map((e) => [e.aggregate_id, e.version, e.event_type])).toEqual([
            [id, 1, 'OrderAccepted'],
            [id, 2, 'PriceQuoted'],
          ]);
          expect((await store.load(id)).map((e) => e.event_type)).toEqual(['OrderAccepted', 'PriceQuoted']);
        }
      });
    });
  });
}
