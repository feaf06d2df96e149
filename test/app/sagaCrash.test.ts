import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idempotencyKeyFor } from '../../src/domain/ids.ts';
import type { Database } from '../../src/app/ports/database.ts';
import type { SagaCommand } from '../../src/machines/orderSaga.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { assertSagaGuarantees, sagaWorld, streams } from '../helpers/saga.ts';

class Crash extends Error {}

const COMMANDS: readonly SagaCommand[] = [
  'quotingPrice',
  'openingPosition',
  'sendingSwap',
  'awaitingOutcome',
  'completing',
];

const UNCRASHED = {
  order: ['OrderAccepted', 'PriceQuoted', 'SwapExecuting', 'SwapExecuted', 'OrderCompleted'],
  position: ['PositionCreated', 'PositionUpdated'],
};

describe('when the runner crashes at a step boundary and a new runner resumes from the store', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  it('an uncrashed run stores the reference events', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    expect(await world.runner.run(orderId)).toMatchObject({ status: 'completed', orderId });
    expect(streams(await world.events(orderId))).toEqual(UNCRASHED);
  });

  it.each(
    COMMANDS.flatMap((command) => [
      [command, 'right after its events are stored'] as const,
      [command, 'after it ran (venue called) but before its events are stored'] as const,
    ]),
  )('%s: crash %s → completes with the swap executed exactly once', async (command, when) => {
    const after = when.startsWith('right after');
    const crashOnce = (at: SagaCommand) => {
      if (at === command) throw new Crash(`crash at ${command}`);
    };
    const world = sagaWorld(db, {
      runner: after ? { afterAppend: (_, at) => crashOnce(at) } : { beforeAppend: (_, at) => crashOnce(at) },
    });
    const orderId = await world.place();

    await expect(world.runner.run(orderId)).rejects.toBeInstanceOf(Crash);
    const resumed = await world.newRunner().run(orderId);

    expect(resumed).toMatchObject({ status: 'completed', orderId });
    const events = await world.events(orderId);
    expect(streams(events)).toEqual(UNCRASHED);
    assertSagaGuarantees(orderId, events, world.market);
    const key = idempotencyKeyFor(orderId);
    expect(world.market.venue.executions(key)).toBe(1);
    const [booked] = world.market.venue.ledger().filter((entry) => entry.idempotency_key === key);
    const executed = events.find((e) => e.event_type === 'SwapExecuted')?.event_data;
    const completed = events.find((e) => e.event_type === 'OrderCompleted')?.event_data;
    expect(executed).toMatchObject({ tx_hash: booked?.tx_hash, to_amount: booked?.to_amount });
    expect(completed).toMatchObject({ tx_hash: booked?.tx_hash, to_amount: booked?.to_amount });
  });

  it('a finished saga run again changes nothing', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    await world.runner.run(orderId);
    const before = await world.events(orderId);

    expect(await world.newRunner().run(orderId)).toMatchObject({ status: 'completed', orderId });
    expect(await world.events(orderId)).toEqual(before);
    expect(world.market.calls().executeSwap).toBe(1);
  });
});
