import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idempotencyKeyFor } from '../../src/domain/ids.ts';
import type { Database } from '../../src/app/ports/database.ts';
import type { PriceFault, VenueFault } from '../../src/infra/venues/simulatedMarket.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { assertSagaGuarantees, sagaWorld, streams } from '../helpers/saga.ts';

describe('when the outside world misbehaves', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  describe.each<[VenueFault, string]>([
    ['error', 'answers with an error'],
    ['timeout', 'does not answer in time'],
    ['lost_answer', 'executes the swap but its answer is lost'],
  ])('and the venue once %s', (fault, _) => {
    it('the swap is looked up by key, retried under the same key, and executed exactly once', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place();
      world.market.venue.failNext(fault);

      expect(await world.runner.run(orderId)).toMatchObject({ status: 'completed', orderId });
      const events = await world.events(orderId);
      assertSagaGuarantees(orderId, events, world.market);
      expect(world.market.venue.executions(idempotencyKeyFor(orderId))).toBe(1);
      expect(world.market.calls().findSwap).toBeGreaterThanOrEqual(1);
    });
  });

  describe('and the venue is down for longer than the retries last', () => {
    it('the saga waits with the outcome unknown, compensates nothing, and completes once the venue is back', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place();
      world.market.venue.startOutage();

      const first = await world.runner.run(orderId);
      expect(first.status).toBe('suspended');
      expect(streams(await world.events(orderId)).order.at(-1)).toBe('SwapExecuting');

      world.market.venue.restore();
      expect(await world.newRunner().run(orderId)).toMatchObject({ status: 'completed', orderId });
      assertSagaGuarantees(orderId, await world.events(orderId), world.market);
    });

    it('past the deadline it still asks the venue first, and completes a swap that did execute', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place();
      // The first call executes and its answer is lost; every later call meets an outage.
      world.market.venue.failNext('lost_answer');
      world.market.venue.failNext('outage', { call: 'findSwap', times: 100 });
      world.market.venue.failNext('outage', { times: 100 });

      expect((await world.runner.run(orderId)).status).toBe('suspended');
      world.clock.advance(60_000);
      world.market.venue.restore();

      expect(await world.newRunner().run(orderId)).toMatchObject({ status: 'completed', orderId });
      expect(world.market.venue.executions(idempotencyKeyFor(orderId))).toBe(1);
      assertSagaGuarantees(orderId, await world.events(orderId), world.market);
    });
  });

  describe.each<[PriceFault, string]>([
    ['unavailable', 'has no price for the pair'],
    ['zero_price', 'quotes zero'],
    ['negative_price', 'quotes a negative price'],
    ['non_finite_price', 'quotes a non-finite price'],
    ['nan_price', 'quotes NaN'],
    ['stale', 'quotes a stale price'],
  ])('and the price feed %s', (fault) => {
    it('the order fails with price_unavailable and no swap is sent', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place();
      world.market.priceService.failNext(fault);

      expect(await world.runner.run(orderId)).toMatchObject({ status: 'failed', orderId });
      const events = await world.events(orderId);
      expect(streams(events)).toEqual({ order: ['OrderAccepted', 'OrderFailed'], position: [] });
      expect(events.at(-1)?.event_data).toMatchObject({
        reason: 'price_unavailable',
        failed_step: 'quote_price',
      });
      expect(world.market.calls().executeSwap).toBe(0);
      assertSagaGuarantees(orderId, events, world.market);
    });
  });

  describe('and the price feed fails twice, then answers', () => {
    it('the quote is retried and the order completes', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place();
      world.market.priceService.failNext('error', { times: 2 });

      expect(await world.runner.run(orderId)).toMatchObject({ status: 'completed', orderId });
      expect(world.market.priceService.quoteCalls).toBe(3);
    });
  });

  describe("and the order is larger than the pair's liquidity", () => {
    it('fails with insufficient_liquidity, closes its position, and swaps nothing', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place({ from_amount: '5000000' });

      expect(await world.runner.run(orderId)).toMatchObject({ status: 'failed', orderId });
      const events = await world.events(orderId);
      expect(streams(events)).toEqual({
        order: ['OrderAccepted', 'PriceQuoted', 'SwapExecuting', 'OrderFailed'],
        position: ['PositionCreated', 'PositionClosed'],
      });
      expect(events.at(-1)?.event_data).toMatchObject({
        reason: 'insufficient_liquidity',
        failed_step: 'execute_swap',
      });
      assertSagaGuarantees(orderId, events, world.market);
    });
  });
});
