import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { assertSagaGuarantees, sagaWorld } from '../helpers/saga.ts';
import { gate } from './moneySafety.contract.ts';

describe('when two runs of one order overlap in one process (a redelivery racing the sweeper)', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  it('they take turns: the saga runs once, and the runner reports it running (with its actor) throughout', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    const held = gate();
    let paused = false;
    const runner = world.newRunner({
      beforeCommand: async (_, command) => {
        if (command === 'quotingPrice' && !paused) {
          paused = true;
          await held.hold();
        }
      },
    });

    const first = runner.run(orderId);
    await held.arrived;
    const second = runner.run(orderId);
    expect(runner.isRunning(orderId)).toBe(true);
    expect(runner.actor(orderId)).toBeDefined();
    held.open();
    const results = await Promise.all([first, second]);

    expect(results.map((r) => r.status)).toEqual(['completed', 'completed']);
    expect(world.market.calls().quotes, 'the price was asked once').toBe(1);
    expect(world.market.calls().executeSwap).toBe(1);
    expect(runner.isRunning(orderId)).toBe(false);
    expect(runner.actor(orderId)).toBeUndefined();
    assertSagaGuarantees(orderId, await world.events(orderId), world.market);
  });
});
