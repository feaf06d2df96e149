import { expect } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { sagaWorld } from '../helpers/saga.ts';

class Crash extends Error {}

/** Sagas of every kind a store holds, run by the real runner on the simulated market. */
export interface StoredSagas {
  readonly completed: readonly string[];
  readonly failed: readonly string[];
  /** Accepted; the saga has not run yet. */
  readonly accepted: readonly string[];
  /** Stopped with SwapExecuting stored: waiting for the swap's outcome. */
  readonly awaitingSwap: readonly string[];
  /** Of the above, stored as before versions were recorded: no saga_version. */
  readonly unrecorded: readonly string[];
}

/**
 * Stores two completed sagas, two failed ones (insufficient liquidity after the swap was sent, no
 * price), and two in flight at each of the points a saga rests at (accepted; SwapExecuting stored).
 * One of each kind has its saga_version removed, as sagas stored before versions were recorded.
 */
export async function storeSagas(db: Database): Promise<StoredSagas> {
  const world = sagaWorld(db);
  const crashing = world.newRunner({
    afterAppend: (_, command) => {
      if (command === 'sendingSwap') throw new Crash('stopped after SwapExecuting');
    },
  });
  const completed = [await world.place(), await world.place()];
  const failed = [await world.place({ from_amount: '2000000' }), await world.place()];
  const accepted = [await world.place(), await world.place()];
  const awaitingSwap = [await world.place(), await world.place()];
  for (const id of completed) expect((await world.runner.run(id)).status).toBe('completed');
  expect((await world.runner.run(failed[0] ?? '')).status).toBe('failed');
  world.market.priceService.failNext('unavailable');
  expect((await world.runner.run(failed[1] ?? '')).status).toBe('failed');
  for (const id of awaitingSwap) await expect(crashing.run(id)).rejects.toBeInstanceOf(Crash);

  const unrecorded = [completed[1], failed[1], accepted[1], awaitingSwap[1]].map((id) => id ?? '');
  await db.query(
    `UPDATE events SET metadata = metadata - 'saga_version' WHERE aggregate_id = ANY($1::uuid[])`,
    [unrecorded],
  );
  return { completed, failed, accepted, awaitingSwap, unrecorded };
}

/** Makes an order's saga record another machine version. */
export async function recordVersion(db: Database, orderId: string, version: number): Promise<void> {
  await db.query(
    `UPDATE events SET metadata = jsonb_set(metadata, '{saga_version}', to_jsonb($2::int))
     WHERE aggregate_id = $1::uuid AND version = 1`,
    [orderId, version],
  );
}
