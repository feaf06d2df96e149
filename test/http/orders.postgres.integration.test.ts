import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { testApp } from '../helpers/app.ts';
import { countRows, DATABASE_URL, migratedPostgres } from '../helpers/databases.ts';

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

  describe('when 20 retries of one order arrive at once with the same Idempotency-Key', () => {
    it('places it once and answers every retry with the same order id', async () => {
      const key = randomUUID();
      const body = JSON.stringify({
        user_id: `user-${randomUUID()}`,
        from_amount: '250.5',
        from_currency: 'USDC',
        to_currency: 'ETH',
        order_type: 'market',
      });

      const responses = await Promise.all(
        Array.from({ length: 20 }, async () =>
          app.request('/orders', {
            method: 'POST',
            body,
            headers: { 'content-type': 'application/json', 'idempotency-key': key },
          }),
        ),
      );

      expect(responses.map((r) => r.status)).toEqual(Array(20).fill(202));
      const ids = new Set(
        await Promise.all(responses.map(async (r) => ((await r.json()) as { order_id: string }).order_id)),
      );
      expect(ids.size).toBe(1);
      const [orderId] = [...ids];
      expect(await countRows(db, 'events', [orderId ?? ''])).toBe(1);
      expect(await countRows(db, 'outbox', [orderId ?? ''])).toBe(1);
      expect(responses.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(19);
    });
  });
});
