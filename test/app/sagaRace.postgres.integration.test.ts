import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { DATABASE_URL, migratedPostgres } from '../helpers/databases.ts';
import { assertSagaGuarantees, sagaWorld } from '../helpers/saga.ts';

// Needs a PostgreSQL server: DATABASE_URL. PGlite has one backend, so its appends never truly race.
describe.runIf(DATABASE_URL)('when two runners drive the same order at once on PostgreSQL', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPostgres({ max: 40 });
  });
  afterAll(async () => {
    await db?.close();
  });

  it('each order gets one swap and one terminal event, whichever runner wins each step', async () => {
    const world = sagaWorld(db, {
      market: { venue: { latency: { minMs: 1, maxMs: 4 } }, priceFeed: { latency: { minMs: 0, maxMs: 2 } } },
    });
    const orders = await Promise.all(Array.from({ length: 20 }, () => world.place()));
    const first = world.newRunner();
    const second = world.newRunner();

    const results = await Promise.all(orders.map((id) => Promise.all([first.run(id), second.run(id)])));

    for (const [a, b] of results) {
      expect(a.status).toBe('completed');
      expect(b.status).toBe('completed');
    }
    for (const orderId of orders) assertSagaGuarantees(orderId, await world.events(orderId), world.market);
    expect(world.market.venue.ledger()).toHaveLength(orders.length);
  });

  it('an order above the liquidity fails once, with its position closed once', async () => {
    const world = sagaWorld(db, { market: { venue: { latency: { minMs: 1, maxMs: 3 } } } });
    const orderId = await world.place({ from_amount: '3000000' });

    const [a, b] = await Promise.all([world.newRunner().run(orderId), world.newRunner().run(orderId)]);

    expect([a.status, b.status]).toEqual(['failed', 'failed']);
    assertSagaGuarantees(orderId, await world.events(orderId), world.market);
  });
});
