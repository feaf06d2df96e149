import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSweeper } from '../../src/app/sweeper.ts';
import type { SweepReport } from '../../src/app/sweeper.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { assertSagaGuarantees, sagaWorld, streams } from '../helpers/saga.ts';
import { until } from '../helpers/wait.ts';
import { createOpenSagas } from '../../src/infra/openSagas.ts';

const STALE_MS = 1_500;

// Needs a PostgreSQL server: DATABASE_URL. A database of its own: a sweeper claims every open saga,
// and the other test files' sagas are not its business.
describe.runIf(DATABASE_URL)('two sweepers on one PostgreSQL', () => {
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let db: Database;
  beforeAll(async () => {
    scratch = await scratchPostgres({ max: 20 });
    db = scratch.db;
  });
  afterAll(async () => {
    await scratch?.drop();
  });

  it('share the stalled sagas: each is resumed by one of them, once, and finishes', async () => {
    const world = sagaWorld(db, { market: { venue: { latency: { minMs: 1, maxMs: 4 } } } });
    const orders = await Promise.all(Array.from({ length: 40 }, () => world.place()));
    // Stalled: no event for STALE_MS (database time). With a stale time of 0 every saga would be due
    // again at once, and the two would resume the same sagas twice (harmless, but not the point).
    await until(async () => {
      const [row] = await db.query<{ idle: boolean }>(
        `SELECT max(created_at) < now() - $1 * interval '1 millisecond' AS idle FROM events`,
        [STALE_MS],
      );
      return row?.idle;
    }, 'the orders to stall');
    const sweepers = [world.newRunner(), world.newRunner()].map((runner) =>
      createSweeper({
        openSagas: createOpenSagas(db),
        runner,
        logger: silentLogger,
        staleMs: STALE_MS,
        batchSize: 8,
        concurrency: 4,
      }),
    );

    // Each keeps sweeping until a sweep finds nothing due; both at once.
    const reports = await Promise.all(
      sweepers.map(async (sweeper) => {
        const done: SweepReport[] = [];
        for (;;) {
          const report = await sweeper.sweepOnce();
          if (report.examined === 0) return done;
          done.push(report);
        }
      }),
    );

    const total = (key: keyof SweepReport) => reports.flat().reduce((sum, report) => sum + report[key], 0);
    expect(total('resumed')).toBe(orders.length);
    expect(total('completed')).toBe(orders.length);
    expect(
      reports.every((mine) => mine.length > 0),
      'both sweepers took a share',
    ).toBe(true);
    for (const orderId of orders) {
      const events = await world.events(orderId);
      expect(streams(events).order.at(-1)).toBe('OrderCompleted');
      assertSagaGuarantees(orderId, events, world.market);
    }
    expect(world.market.venue.ledger()).toHaveLength(orders.length);
    const [open] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM open_sagas');
    expect(open?.n).toBe(0);
  });
});
