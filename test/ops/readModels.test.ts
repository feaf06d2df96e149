import { randomUUID } from 'node:crypto';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { positionIdFor } from '../../src/domain/ids.ts';
import { pgliteDatabase } from '../../src/infra/db/pglite.ts';
import { migrate, MIGRATIONS_DIR } from '../../src/infra/migrations.ts';
import { compareReadModels } from '../../src/infra/projectionReplay.ts';
import { createReadModels } from '../../src/infra/readModels.ts';
import { checkGuarantees } from '../../src/ops/guarantees.ts';
import { runRebuildProjections } from '../../src/ops/rebuildProjections.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { sagaWorld } from '../helpers/saga.ts';

/** Completed, failed and still pending orders of a few users, run through the real saga. */
async function someOrders(world: ReturnType<typeof sagaWorld>) {
  const completed = await world.place({ user_id: 'alice' });
  const failed = await world.place({ user_id: 'alice', from_amount: '5000000' });
  const pending = await world.place({ user_id: 'bob' });
  await world.runner.run(completed);
  await world.runner.run(failed);
  return { completed, failed, pending };
}

const guarantee6 = async (db: Database) => (await checkGuarantees({ db })).find((r) => r.guarantee === 6);

async function indexNames(db: Database) {
  const rows = await db.query<{ name: string }>(
    `SELECT indexname AS name FROM pg_indexes WHERE tablename IN ('orders_view', 'positions_view') ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}

describe('the read models against a replay of the events', () => {
  let db: Database;
  let world: ReturnType<typeof sagaWorld>;
  let orders: Awaited<ReturnType<typeof someOrders>>;
  beforeAll(async () => {
    db = await migratedPglite();
    world = sagaWorld(db);
    orders = await someOrders(world);
  });
  afterAll(async () => {
    await db?.close();
  });

  describe('when the trigger kept them', () => {
    it('finds them equal (guarantee 6)', async () => {
      expect(await guarantee6(db)).toMatchObject({ status: 'ok', violationCount: 0 });
      expect((await guarantee6(db))?.checked).toMatch(/orders_view \(3 rows\), positions_view \(2 rows\)/);
    });
  });

  describe('when view rows were tampered with', () => {
    it('names each row that differs, then rebuild-projections counts them, restores them and keeps serving', async () => {
      const indexesBefore = await indexNames(db);
      const bogus = randomUUID();
      await db.query(`UPDATE orders_view SET to_amount = to_amount + 1 WHERE order_id = $1`, [
        orders.completed,
      ]);
      await db.query(`DELETE FROM positions_view WHERE position_id = $1`, [positionIdFor(orders.failed)]);
      await db.query(
        `INSERT INTO orders_view (order_id, user_id, order_type, status, from_amount, from_currency, to_currency,
                                  created_at, updated_at, version)
         VALUES ($1, 'mallory', 'market', 'completed', 1, 'USDT', 'BTC', now(), now(), 1)`,
        [bogus],
      );

      const tampered = await guarantee6(db);
      expect(tampered).toMatchObject({ status: 'violated', violationCount: 3 });
      expect(tampered?.violations).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            view: 'orders_view',
            id: orders.completed,
            problem: expect.stringMatching(/differs from a replay in to_amount/) as string,
          }),
          expect.objectContaining({
            view: 'positions_view',
            id: positionIdFor(orders.failed),
            problem: 'missing from positions_view',
          }),
          expect.objectContaining({
            view: 'orders_view',
            id: bogus,
            problem: expect.stringMatching(/no event/) as string,
          }),
        ]),
      );

      const printed: string[] = [];
      const report = await runRebuildProjections(db, (text) => printed.push(text), {
        batchSize: 2,
        cachedRows: 1,
      });
      expect(report).toMatchObject({
        rowsDiffered: 3,
        rows: { orders: 3, positions: 2 },
        skippedEvents: 0,
      });
      expect(report.eventsRead).toBe(
        Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM events'))[0]?.n),
      );
      expect(report.differed.map((d) => d.id).sort()).toEqual(
        [orders.completed, positionIdFor(orders.failed), bogus].sort(),
      );
      expect(printed.join('\n')).toMatch(/rows differed:\s+3/);
      expect(await guarantee6(db)).toMatchObject({ status: 'ok', violationCount: 0 });
      expect(await indexNames(db)).toEqual(indexesBefore);

      // The trigger writes the rebuilt tables: an order placed now shows at once.
      const after = await world.place({ user_id: 'carol' });
      expect(await createReadModels(db).order(after)).toMatchObject({ order_id: after, status: 'pending' });
      await world.runner.run(after);
      expect(await createReadModels(db).order(after)).toMatchObject({ status: 'completed' });

      const again = await runRebuildProjections(db, () => {});
      expect(again).toMatchObject({ rowsDiffered: 0, rows: { orders: 4, positions: 3 } });
    });
  });
  describe('when a stored event is not what the event catalogue says', () => {
    it('still stores it, and guarantee 6 names the event instead of failing', async () => {
      const orderId = randomUUID();
      const eventId = randomUUID();
      // Written as an older or buggy producer might have: the store does not check what it writes.
      await db.query(
        `INSERT INTO events (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
         VALUES ($1, $2, 'order', 'OrderAccepted', 1, $3::text::jsonb, $4::text::jsonb)`,
        [
          eventId,
          orderId,
          JSON.stringify({ order_id: orderId, user_id: 'dave', from_amount: 'lots', order_type: 'market' }),
          JSON.stringify({
            correlation_id: orderId,
            causation_id: null,
            occurred_at: new Date().toISOString(),
            schema_version: 1,
          }),
        ],
      );

      expect(await createReadModels(db).order(orderId)).toBeUndefined();
      const result = await guarantee6(db);
      expect(result).toMatchObject({ status: 'violated', violationCount: 1 });
      expect(result?.violations).toEqual([
        {
          view: 'events',
          id: eventId,
          problem: expect.stringMatching(/event_data.from_amount must be a decimal string/) as string,
        },
      ]);

      // The rebuild stops there, naming the event, and leaves the live tables as they were.
      await expect(runRebuildProjections(db, () => {})).rejects.toThrow(
        new RegExp(`Invalid stored event ${eventId}: event_data.from_amount`),
      );
      expect(await createReadModels(db).order(orders.completed)).toMatchObject({ status: 'completed' });
    });
  });
});

describe('migration 010 on a database that already holds orders', () => {
  it('fills the read models with what a replay of the stored events gives', async () => {
    const before = await mkdtemp(join(tmpdir(), 'migrations-'));
    const db = await pgliteDatabase();
    try {
      const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f < '010');
      for (const file of files) await cp(new URL(file, MIGRATIONS_DIR), join(before, file));
      await migrate(db, { dir: pathToFileURL(`${before}/`) });
      await someOrders(sagaWorld(db));

      await migrate(db);

      expect(await compareReadModels(db)).toMatchObject({
        rows: { orders: 3, positions: 2 },
        differenceCount: 0,
      });
    } finally {
      await db.close();
      await rm(before, { recursive: true, force: true });
    }
  });
});
