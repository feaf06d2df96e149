import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SwapOutcome, TradeVenue } from '../../src/app/ports.ts';
import { createReconciler } from '../../src/app/swapAudit.ts';
import { createSweeper } from '../../src/app/sweeper.ts';
import { idempotencyKeyFor } from '../../src/domain/ids.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createSwapAudit } from '../../src/infra/swapAudit.ts';
import { checkGuarantees } from '../../src/ops/guarantees.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { sagaWorld, streams } from '../helpers/saga.ts';
import type { SagaWorld } from '../helpers/saga.ts';
import { eventually } from '../helpers/wait.ts';
import { gate, venueIgnoringVoids } from './moneySafety.contract.ts';
import { createOpenSagas } from '../../src/infra/openSagas.ts';

/** A logger whose JSON lines the test reads. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

const reconciliation = async (db: Database, orderId: string) =>
  (
    await db.query<{
      venue_outcome: string | null;
      tx_hash: string | null;
      found_by: string | null;
      attempts: number;
    }>('SELECT venue_outcome, tx_hash, found_by, attempts FROM swap_reconciliations WHERE order_id = $1', [
      orderId,
    ])
  )[0];

/** Guarantee 2's violations that name this order. */
async function swapViolations(world: SagaWorld, orderId: string) {
  const [, g2] = await checkGuarantees({ db: world.db, ledger: world.market.venue.ledger() });
  return (g2?.violations ?? []).filter((v) => JSON.stringify(v).includes(orderId));
}

const skewed = (world: SagaWorld) => () => new Date(world.clock.now().getTime() + 60_000);

/**
 * A venue that breaks its contract, as the auditor must assume one can: it answers `voided` and
 * executes the request anyway. Worker A holds the request at `hold` (before or after sending it);
 * worker B, whose clock is past the deadline, "voids" and compensates; then A goes on.
 */
async function failedButExecuted(world: SagaWorld, hold: 'beforeAppend', workerALogger = silentLogger) {
  const orderId = await world.place();
  const held = gate();
  const workerA = world.newRunner({
    logger: workerALogger,
    audit: createSwapAudit(world.db),
    [hold]: async (_: string, command: string) => {
      if (command === 'awaitingOutcome') await held.hold();
    },
  });
  const a = workerA.run(orderId);
  await held.arrived;
  const workerB = world.newRunner({ now: skewed(world), venue: venueIgnoringVoids(world.market.venue) });
  expect(await workerB.run(orderId)).toMatchObject({ status: 'failed' });
  held.open();
  return { orderId, a: await a };
}

describe('reconciling the swaps of failed orders with the venue', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  describe('when a worker holds an execution for an order another worker failed', () => {
    it('logs an error-level alert with the order id and tx hash, records it, and the check reports it', async () => {
      const world = sagaWorld(db, { settings: { deadlineMs: 2_000 } });
      const { logger, lines } = capturingLogger();

      const { orderId, a } = await failedButExecuted(world, 'beforeAppend', logger);

      expect(a.status).toBe('failed');
      const [entry] = world.market.venue
        .ledger()
        .filter((e) => e.idempotency_key === idempotencyKeyFor(orderId));
      expect(lines.filter((l) => l.level === 50)).toEqual([
        expect.objectContaining({ alert: 'executed_swap_of_failed_order', orderId, txHash: entry?.tx_hash }),
      ]);
      expect(await reconciliation(db, orderId)).toMatchObject({
        venue_outcome: 'executed',
        tx_hash: entry?.tx_hash,
        found_by: 'saga',
      });
      const problems = (await swapViolations(world, orderId)).map((v) => (v as { problem: string }).problem);
      expect(problems.sort()).toEqual([
        'executed at the venue, but the order failed',
        'the venue executed the swap of a failed order',
      ]);
    });
  });

  describe('when nobody holds the execution (worker A died after the venue executed)', () => {
    it('the reconciler finds it at the venue, alerts and records it; a second round leaves it alone', async () => {
      const world = sagaWorld(db, { settings: { deadlineMs: 2_000 } });
      const orderId = await world.place();
      const died = world.newRunner({
        beforeAppend: (_, command) => {
          if (command === 'awaitingOutcome') throw new Error('worker A died');
        },
      });
      await expect(died.run(orderId)).rejects.toThrow('worker A died');
      const liar = world.newRunner({ now: skewed(world), venue: venueIgnoringVoids(world.market.venue) });
      expect(await liar.run(orderId)).toMatchObject({ status: 'failed' });
      expect(await reconciliation(db, orderId)).toMatchObject({ venue_outcome: null, attempts: 0 });

      const { logger, lines } = capturingLogger();
      const reconciler = createReconciler({ audit: createSwapAudit(db), venue: world.market.venue, logger });
      const report = await reconciler.reconcileOnce();

      expect(report).toMatchObject({ anomalies: 1, unreachable: 0 });
      expect(lines.filter((l) => l.level === 50 && l.orderId === orderId)).toHaveLength(1);
      expect(await reconciliation(db, orderId)).toMatchObject({
        venue_outcome: 'executed',
        found_by: 'reconcile',
      });
      expect(await swapViolations(world, orderId)).not.toEqual([]);
      expect((await reconciler.reconcileOnce()).examined).toBe(0);
    });
  });

  describe('when a failed order sent its swap and the venue voided it', () => {
    it('the reconciler voids it again (a no-op), records it settled, and the check is clean for it', async () => {
      const world = sagaWorld(db, { settings: { deadlineMs: 2_000 } });
      const orderId = await world.place();
      world.market.venue.startOutage();
      expect((await world.runner.run(orderId)).status).toBe('suspended');
      world.market.venue.restore();
      world.clock.advance(10_000);
      expect(await world.newRunner().run(orderId)).toMatchObject({ status: 'failed' });

      const reconciler = createReconciler({
        audit: createSwapAudit(db),
        venue: world.market.venue,
        logger: silentLogger,
      });
      await reconciler.reconcileOnce();

      expect(await reconciliation(db, orderId)).toMatchObject({
        venue_outcome: 'voided',
        found_by: 'reconcile',
      });
      expect(await swapViolations(world, orderId)).toEqual([]);
    });
  });

  describe('when the venue cannot be reached', () => {
    it('leaves the order unsettled and asks again after the retry interval', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place();
      world.market.venue.rejectNext('venue_rejected', { key: idempotencyKeyFor(orderId) });
      expect(await world.runner.run(orderId)).toMatchObject({ status: 'failed' });
      world.market.venue.startOutage();
      const audit = createSwapAudit(db);

      const down = createReconciler({
        audit,
        venue: world.market.venue,
        logger: silentLogger,
        retryAfterMs: 0,
      });
      expect((await down.reconcileOnce()).unreachable).toBeGreaterThanOrEqual(1);
      expect(await reconciliation(db, orderId)).toMatchObject({ venue_outcome: null, attempts: 1 });

      world.market.venue.restore();
      await down.reconcileOnce();
      expect(await reconciliation(db, orderId)).toMatchObject({ venue_outcome: 'rejected', attempts: 2 });
    });
  });

  describe('when the sweeper runs with a reconciler', () => {
    it('settles a failed order on its interval, without being asked', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place();
      world.market.venue.rejectNext('slippage_exceeded', { key: idempotencyKeyFor(orderId) });
      expect(await world.runner.run(orderId)).toMatchObject({ status: 'failed' });
      const reconciler = createReconciler({
        audit: createSwapAudit(db),
        venue: world.market.venue,
        logger: silentLogger,
      });
      const sweeper = createSweeper({
        openSagas: createOpenSagas(db),
        runner: world.newRunner(),
        logger: silentLogger,
        intervalMs: 20,
        reconciler,
      });

      sweeper.start();
      try {
        await eventually(
          async () => (await reconciliation(db, orderId))?.venue_outcome === 'rejected',
          'reconciled',
        );
      } finally {
        await sweeper.stop();
      }
    });
  });

  describe('when an order failed before it sent a swap', () => {
    it('has nothing to reconcile', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place({ from_amount: '5000000' });
      world.market.priceService.failNext('unavailable');
      expect(await world.runner.run(orderId)).toMatchObject({ status: 'failed' });
      expect(streams(await world.events(orderId)).order).not.toContain('SwapExecuting');
      expect(await reconciliation(db, orderId)).toBeUndefined();
    });
  });
});

/** A venue that executes, then reports (and books for us) a delivery outside the request's terms. */
function venueDeliveringShort(venue: TradeVenue): TradeVenue {
  const short = (outcome: SwapOutcome): SwapOutcome =>
    outcome.status === 'executed' ? { ...outcome, to_amount: '0.000000001' } : outcome;
  return {
    executeSwap: async (request, signal) => short(await venue.executeSwap(request, signal)),
    findSwap: async (key, signal) => {
      const outcome = await venue.findSwap(key, signal);
      return outcome && short(outcome);
    },
    voidSwap: async (key, signal) => short(await venue.voidSwap(key, signal)),
  };
}

describe('when the venue delivers less than min_to_amount, with more decimals than the currency has', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  it('records what the venue did, completes the order, flags both anomalies and alerts', async () => {
    const world = sagaWorld(db);
    const { logger, lines } = capturingLogger();
    const orderId = await world.place();
    const runner = world.newRunner({ venue: venueDeliveringShort(world.market.venue), logger });

    expect(await runner.run(orderId)).toMatchObject({ status: 'completed' });

    const executed = (await world.events(orderId)).find((e) => e.event_type === 'SwapExecuted');
    expect(executed?.event_data).toMatchObject({
      to_amount: '0.000000001',
      venue_anomalies: [
        expect.stringMatching(/below min_to_amount/),
        expect.stringMatching(/more than the 8 decimals of BTC/),
      ],
    });
    expect(lines.filter((l) => l.level === 50)).toEqual([
      expect.objectContaining({ alert: 'venue_anomaly', orderId }),
    ]);
    const [, g2] = await checkGuarantees({ db });
    expect(g2?.detail).toContain(orderId);
  });
});
