import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareReadModels } from '../../src/infra/projectionReplay.ts';
import { createReadModels } from '../../src/infra/readModels.ts';
import { rebuildReadModels } from '../../src/infra/projectionRebuild.ts';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { sagaWorld } from '../helpers/saga.ts';

// Needs a PostgreSQL server: DATABASE_URL. The rebuild replaces whole tables: a database of its own.
describe.runIf(DATABASE_URL)('rebuild-projections on PostgreSQL while orders keep coming', () => {
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  beforeAll(async () => {
    scratch = await scratchPostgres({ max: 12 });
  });
  afterAll(async () => {
    await scratch?.drop();
  });

  it('swaps in tables equal to a replay of every event, with no order lost', async () => {
    const { db } = scratch;
    const world = sagaWorld(db);
    const outcomes = new Map<string, string>();
    const placeAndRun = async (i: number) => {
      const orderId = await world.place({
        user_id: `user-${i % 7}`,
        from_amount: i % 9 === 0 ? '5000000' : '100',
      });
      outcomes.set(orderId, (await world.runner.run(orderId)).status);
    };
    for (let i = 0; i < 120; i += 12)
      await Promise.all(Array.from({ length: 12 }, (_, j) => placeAndRun(i + j)));

    let stop = false;
    let during = 0;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        await placeAndRun(1000 * (w + 1) + i);
        during += 1;
      }
    });
    const placedBefore = outcomes.size;
    // A transaction still open on `events` (as a slow append's would be) when the swap comes.
    let blocking: Promise<void> | undefined;
    const report = await rebuildReadModels(db, {
      // Small batches: the copy and the appends interleave for a while.
      batchSize: 25,
      cachedRows: 40,
      beforeSwap: async () => {
        while (outcomes.size < placedBefore + 30) await new Promise((resolve) => setTimeout(resolve, 10));
        await new Promise<void>((locked) => {
          blocking = db.transaction(async (tx) => {
            await tx.query('LOCK TABLE events IN ROW EXCLUSIVE MODE');
            locked();
            await new Promise((resolve) => setTimeout(resolve, 1200));
          });
        });
      },
    }).finally(() => {
      stop = true;
    });
    await Promise.all(writers);
    await blocking;

    expect(during).toBeGreaterThanOrEqual(30);
    expect(report).toMatchObject({ rowsDiffered: 0, skippedEvents: 0 });
    // It let appends through while the other transaction held `events`, and locked it later.
    expect(report.swapAttempts).toBeGreaterThan(1);
    expect(report.lockedMs).toBeLessThan(1000);
    expect(await compareReadModels(db)).toMatchObject({
      differenceCount: 0,
      rows: { orders: outcomes.size },
    });
    const views = createReadModels(db);
    for (const [orderId, status] of outcomes) {
      expect((await views.order(orderId))?.status, orderId).toBe(status);
    }
  });
});
