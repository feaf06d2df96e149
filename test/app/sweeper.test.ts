import { randomUUID } from 'node:crypto';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSweeper } from '../../src/app/sweeper.ts';
import type { SweeperOptions } from '../../src/app/sweeper.ts';
import { idempotencyKeyFor } from '../../src/domain/ids.ts';
import { pgliteDatabase } from '../../src/infra/db/pglite.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { migrate, MIGRATIONS_DIR } from '../../src/infra/migrations.ts';
import type { SagaCommand } from '../../src/machines/orderSaga.ts';
import { checkGuarantees } from '../../src/ops/guarantees.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { assertSagaGuarantees, sagaWorld, streams } from '../helpers/saga.ts';
import type { SagaWorld } from '../helpers/saga.ts';
import { eventually } from '../helpers/wait.ts';
import { createOpenSagas } from '../../src/infra/openSagas.ts';
import { createIdempotencyKeys } from '../../src/infra/idempotencyKeys.ts';

class Crash extends Error {}

const COMPLETED = {
  order: ['OrderAccepted', 'PriceQuoted', 'SwapExecuting', 'SwapExecuted', 'OrderCompleted'],
  position: ['PositionCreated', 'PositionUpdated'],
};

/** A sweeper for the world's database, driving sagas with a fresh runner (another process's). */
const sweeperOf = (world: SagaWorld, options: Partial<SweeperOptions> = {}) =>
  createSweeper({
    openSagas: createOpenSagas(world.db),
    runner: world.newRunner(),
    logger: silentLogger,
    staleMs: 0,
    ...options,
  });

/**
 * Runs the order's saga and "crashes" at `command`: right after its events are stored, or after it
 * ran (the outside world called) but before they are stored. Steps that need no I/O are stored with
 * the step before them, so the stops that differ are: before QuotePrice is stored (only
 * OrderAccepted), after it (SwapExecuting stored, swap not sent), and before ExecuteSwap is stored
 * (swap executed by the venue, its answer lost).
 */
async function crash(world: SagaWorld, orderId: string, command: SagaCommand, when: 'before' | 'after') {
  const hook = (_: string, at: SagaCommand) => {
    if (at === command) throw new Crash(`crash ${when} ${command} is stored`);
  };
  const runner = world.newRunner(when === 'after' ? { afterAppend: hook } : { beforeAppend: hook });
  await expect(runner.run(orderId)).rejects.toBeInstanceOf(Crash);
}

const openSaga = async (db: Database, orderId: string) =>
  (await db.query<{ resumes: number }>('SELECT resumes FROM open_sagas WHERE order_id = $1', [orderId]))[0];

// The sweeper claims every open saga of its database, so each test leaves none open behind it.
describe('the sweeper', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  it('finishes a saga whose OrderAccepted never reached an orchestrator', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    expect(await openSaga(db, orderId)).toEqual({ resumes: 0 });

    const report = await sweeperOf(world).sweepOnce();

    expect(report).toEqual({ examined: 1, resumed: 1, completed: 1, failed: 0, suspended: 0, errors: 0 });
    const events = await world.events(orderId);
    expect(streams(events)).toEqual(COMPLETED);
    assertSagaGuarantees(orderId, events, world.market);
    expect(await openSaga(db, orderId)).toBeUndefined();
  });

  it('finishes sagas stopped at every step, executing each swap exactly once', async () => {
    const world = sagaWorld(db);
    const stops = [
      ['quotingPrice', 'before'],
      ['quotingPrice', 'after'],
      ['awaitingOutcome', 'before'],
    ] as const;
    const orders = await Promise.all(stops.map(() => world.place()));
    for (const [i, [command, when]] of stops.entries())
      await crash(world, orders[i] as string, command, when);
    expect(world.market.venue.ledger()).toHaveLength(1);

    const report = await sweeperOf(world).sweepOnce();

    expect(report).toEqual({ examined: 3, resumed: 3, completed: 3, failed: 0, suspended: 0, errors: 0 });
    for (const orderId of orders) {
      const events = await world.events(orderId);
      expect(streams(events)).toEqual(COMPLETED);
      assertSagaGuarantees(orderId, events, world.market);
      expect(world.market.venue.executions(idempotencyKeyFor(orderId))).toBe(1);
    }
    expect(world.market.venue.ledger()).toHaveLength(3);
  });

  it('leaves alone a saga that made progress within the stale time, and looks again only after it', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    await crash(world, orderId, 'quotingPrice', 'after');
    const stopped = streams(await world.events(orderId));
    // Accepted long ago (as far as the sweeper knows), but its last event is seconds old.
    await db.query(`UPDATE open_sagas SET checked_at = now() - interval '1 hour' WHERE order_id = $1`, [
      orderId,
    ]);
    const sweeper = sweeperOf(world, { staleMs: 60_000 });

    expect(await sweeper.sweepOnce()).toMatchObject({ examined: 1, resumed: 0 });
    expect(await sweeper.sweepOnce()).toMatchObject({ examined: 0, resumed: 0 });
    expect(streams(await world.events(orderId))).toEqual(stopped);

    await world.newRunner().run(orderId);
    expect(await openSaga(db, orderId)).toBeUndefined();
  });

  it('compensates a saga that stalled before its price once its deadline has passed', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    await crash(world, orderId, 'quotingPrice', 'before');
    world.clock.advance(31_000);

    expect(await sweeperOf(world).sweepOnce()).toMatchObject({ resumed: 1, failed: 1 });

    const events = await world.events(orderId);
    expect(streams(events)).toEqual({ order: ['OrderAccepted', 'OrderFailed'], position: [] });
    expect(events.at(-1)?.event_data).toMatchObject({ reason: 'deadline_exceeded' });
    expect(world.market.venue.calls().executeSwap).toBe(0);
    assertSagaGuarantees(orderId, events, world.market);
  });

  it('keeps a saga whose swap outcome cannot be learned open, and resolves it on a later sweep', async () => {
    const world = sagaWorld(db);
    const orderId = await world.place();
    await crash(world, orderId, 'quotingPrice', 'after');
    world.clock.advance(31_000);
    world.market.venue.startOutage();
    const sweeper = sweeperOf(world);

    expect(await sweeper.sweepOnce()).toMatchObject({ resumed: 1, suspended: 1 });
    expect(await openSaga(db, orderId)).toEqual({ resumes: 1 });
    expect(streams(await world.events(orderId)).order.at(-1)).toBe('SwapExecuting');

    world.market.venue.restore();
    expect(await sweeper.sweepOnce()).toMatchObject({ resumed: 1, failed: 1 });
    // The venue never received the swap: past the deadline it is not sent, the order fails.
    const events = await world.events(orderId);
    const failed = events.find((e) => e.event_type === 'OrderFailed');
    expect(failed?.event_data).toMatchObject({ reason: 'deadline_exceeded' });
    expect(streams(events).position).toEqual(['PositionCreated', 'PositionClosed']);
    expect(world.market.venue.ledger()).toHaveLength(0);
    expect(await openSaga(db, orderId)).toBeUndefined();
  });

  it('once started, resumes stalled sagas by itself until stopped', async () => {
    const world = sagaWorld(db);
    const orders = await Promise.all([world.place(), world.place(), world.place()]);
    const sweeper = sweeperOf(world, { intervalMs: 10, batchSize: 2 });

    sweeper.start();
    try {
      await eventually(async () => {
        const open = await db.query('SELECT 1 FROM open_sagas WHERE order_id = ANY($1::uuid[])', [orders]);
        return open.length === 0;
      }, 'the sweeper to finish three sagas');
    } finally {
      await sweeper.stop();
    }
    for (const orderId of orders) expect(streams(await world.events(orderId))).toEqual(COMPLETED);
  });

  it('deletes the expired Idempotency-Keys of orders, in batches, and keeps the others', async () => {
    const keys = createIdempotencyKeys(db);
    const at = new Date();
    const claim = (i: number, ttlMs: number) =>
      keys.claim({
        user_id: 'user-keys',
        idempotency_key: `key-${i}`,
        fingerprint: '0'.repeat(64),
        order_id: randomUUID(),
        token: randomUUID(),
        now: at,
        lease_until: at,
        expires_at: new Date(at.getTime() + ttlMs),
      });
    for (let i = 0; i < 1005; i++) await claim(i, 1000);
    await claim(1005, 60 * 60 * 1000);
    const sweeper = sweeperOf(sagaWorld(db), {
      idempotencyKeys: keys,
      now: () => new Date(at.getTime() + 1000),
      intervalMs: 60_000,
    });

    sweeper.start();
    try {
      await eventually(async () => {
        const left = await db.query<{ idempotency_key: string }>(
          `SELECT idempotency_key FROM idempotency_keys WHERE user_id = 'user-keys'`,
        );
        return left.length === 1 && left[0]?.idempotency_key === 'key-1005';
      }, 'the sweeper to delete 1,005 expired keys');
    } finally {
      await sweeper.stop();
    }
  });

  it('keeps open_sagas equal to a replay of the events (guarantee 6)', async () => {
    const results = await checkGuarantees({ db });
    expect(results.find((r) => r.guarantee === 6)).toMatchObject({ status: 'ok', violationCount: 0 });
  });
});

describe('migration 007 on a database that already holds orders', () => {
  it('lists the orders accepted before it that have not ended, and no others', async () => {
    const before = await mkdtemp(join(tmpdir(), 'migrations-'));
    const db = await pgliteDatabase();
    try {
      const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f < '007');
      for (const file of files) await cp(new URL(file, MIGRATIONS_DIR), join(before, file));
      await migrate(db, { dir: pathToFileURL(`${before}/`) });
      const world = sagaWorld(db);
      const [ended, open] = [await world.place(), await world.place()];
      await world.runner.run(ended);

      await migrate(db);

      const rows = await db.query<{ order_id: string }>('SELECT order_id::text AS order_id FROM open_sagas');
      expect(rows).toEqual([{ order_id: open }]);
    } finally {
      await db.close();
      await rm(before, { recursive: true, force: true });
    }
  });
});
