import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { testApp } from '../helpers/app.ts';
import { DATABASE_URL, migratedPostgres } from '../helpers/databases.ts';

// Needs a PostgreSQL server: DATABASE_URL. Real concurrency only shows on a multi-backend server.
describe.runIf(DATABASE_URL)('the orders API on PostgreSQL', () => {
  let db: Database;
  let app: ReturnType<typeof testApp>;
  beforeAll(async () => {
    db = await migratedPostgres({ max: 20 });
    app = testApp(db);
  });
  afterAll(async () => {
    await db.close();
  });

  const anOrder = (userId: string, amount = '250.5') => ({
    user_id: userId,
    from_amount: amount,
    from_currency: 'USDC',
    to_currency: 'ETH',
    order_type: 'market',
  });

  /** The same key with each body, all at once: status, body and Idempotent-Replayed of each answer. */
  const postAll = (key: string, bodies: readonly unknown[]) =>
    Promise.all(
      bodies.map(async (body) => {
        const res = await app.request('/orders', {
          method: 'POST',
          body: JSON.stringify(body),
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
        });
        return {
          status: res.status,
          body: (await res.json()) as { order_id?: string; type?: string },
          replayed: res.headers.get('idempotent-replayed') === 'true',
        };
      }),
    );

  async function ordersOf(userId: string): Promise<string[]> {
    const rows = await db.query<{ aggregate_id: string }>(
      `SELECT aggregate_id FROM events WHERE event_type = 'OrderAccepted' AND event_data->>'user_id' = $1`,
      [userId],
    );
    return rows.map((row) => row.aggregate_id);
  }

  describe('when 50 requests with the same Idempotency-Key and body arrive at once', () => {
    it('places one order; every answer is 202 with its id (original or replayed) or 409 in flight', async () => {
      const userId = `user-${randomUUID()}`;

      const answers = await postAll(randomUUID(), Array(50).fill(anOrder(userId)));

      const orders = await ordersOf(userId);
      expect(orders).toHaveLength(1);
      expect(answers.map((a) => a.status).filter((s) => s !== 202 && s !== 409)).toEqual([]);
      const accepted = answers.filter((a) => a.status === 202);
      expect(new Set(accepted.map((a) => a.body.order_id))).toEqual(new Set(orders));
      expect(accepted.filter((a) => !a.replayed)).toHaveLength(1);
      for (const answer of answers.filter((a) => a.status === 409)) {
        expect(answer.body.type).toBe('urn:market-order-saga:problem:idempotency_key_in_flight');
      }
      const [row] = await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM outbox WHERE aggregate_id = $1',
        [orders[0]],
      );
      expect(row?.n).toBe(1);
    });
  });

  describe('when 50 requests with the same Idempotency-Key and different bodies arrive at once', () => {
    it('places one order and refuses the others with 409 or 422', async () => {
      const userId = `user-${randomUUID()}`;
      const bodies = Array.from({ length: 50 }, (_, i) => anOrder(userId, `${100 + i}`));

      const answers = await postAll(randomUUID(), bodies);

      const orders = await ordersOf(userId);
      expect(orders).toHaveLength(1);
      const accepted = answers.filter((a) => a.status === 202);
      expect(accepted.map((a) => a.body.order_id)).toEqual(orders);
      expect(answers.map((a) => a.status).filter((s) => s !== 202 && s !== 409 && s !== 422)).toEqual([]);
    });
  });
});
