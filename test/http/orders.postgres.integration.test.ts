import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrderService } from '../../src/app/orders.ts';
import { currencies } from '../../src/domain/money.ts';
import type { Database } from '../../src/infra/db/port.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createApp } from '../../src/http/app.ts';
import { countRows, DATABASE_URL, migratedPostgres } from '../helpers/databases.ts';

// Needs a PostgreSQL server: DATABASE_URL. Real concurrency only shows on a multi-backend server.
describe.runIf(DATABASE_URL)('the orders API on PostgreSQL', () => {
  let db: Database;
  let app: ReturnType<typeof createApp>;
  beforeAll(async () => {
    db = await migratedPostgres({ max: 20 });
    const store = createEventStore(db);
    const orders = createOrderService({ store, now: () => new Date(), newId: randomUUID });
    app = createApp({ orders, store, currencies: currencies(), db, logger: silentLogger });
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
