import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SwapOutcome, TradeVenue } from '../../src/app/ports.ts';
import { idempotencyKeyFor } from '../../src/domain/ids.ts';
import type { Database } from '../../src/app/ports/database.ts';
import type { StoredEvent } from '../../src/app/ports/eventStore.ts';
import { assertSagaGuarantees, realClock, sagaWorld, streams } from '../helpers/saga.ts';
import type { SagaWorld } from '../helpers/saga.ts';

/** A promise the test resolves when it chooses: holds a worker at a hook. */
export function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  let reached: () => void = () => {};
  const arrived = new Promise<void>((resolve) => {
    reached = resolve;
  });
  return {
    /** Called by the hook: signals arrival, then waits to be let through. */
    async hold() {
      reached();
      await opened;
    },
    arrived,
    open,
  };
}

/** What the venue holds for an order's key, as a word: executed, voided, rejected, pending, none. */
export function venueWord(world: SagaWorld, orderId: string): string {
  const recorded = world.market.venue.recorded(idempotencyKeyFor(orderId));
  if (recorded === undefined) return 'none';
  return recorded === 'pending' ? 'pending' : recorded.status;
}

/**
 * The events and the venue agree: completed ⇔ executed once with the stored tx hash; failed ⇒
 * not executed, and a swap that was sent is voided or refused at the venue for good.
 */
export function expectEventsAgreeWithVenue(
  world: SagaWorld,
  orderId: string,
  events: readonly StoredEvent[],
) {
  assertSagaGuarantees(orderId, events, world.market);
  const executed = events.find((e) => e.event_type === 'SwapExecuted');
  const ledger = world.market.venue.ledger().filter((e) => e.idempotency_key === idempotencyKeyFor(orderId));
  expect(
    ledger.map((e) => e.tx_hash),
    'the venue ledger equals the SwapExecuted events',
  ).toEqual(executed ? [(executed.event_data as { tx_hash: string }).tx_hash] : []);
}

/**
 * Money safety on a given database: no swap may execute for an order recorded as failed, whatever
 * the workers' clocks say and however late the venue processes a request. The two reproductions of
 * issue 9, as tests.
 */
export function moneySafetyContract(name: string, open: () => Promise<Database>) {
  describe(`money safety on ${name}`, () => {
    let db: Database;
    beforeAll(async () => {
      db = await open();
    });
    afterAll(async () => {
      await db?.close();
    });

    describe('when the venue processes a request after the deadline (sent 20 ms before it, processed 150 ms later)', () => {
      it('the order is never failed with an executed swap: the venue refuses it, the key is voided', async () => {
        const deadlineMs = 1_500;
        const clock = realClock();
        const world = sagaWorld(db, {
          clock,
          settings: { deadlineMs, callTimeoutMs: 100, retries: 0 },
          market: { venue: { processingDelay: { minMs: 150 } } },
        });
        const orderId = await world.place();
        const acceptedAt = clock.now().getTime();
        // Worker A sends 20 ms before the deadline; its call times out after 100 ms.
        const workerA = world.newRunner({
          beforeCommand: async (_, command) => {
            if (command === 'awaitingOutcome')
              await sleep(Math.max(0, acceptedAt + deadlineMs - 20 - Date.now()));
          },
        });
        const a = await workerA.run(orderId);
        // Worker B resumes one call timeout after the deadline.
        await sleep(Math.max(0, acceptedAt + deadlineMs + 100 - Date.now()));
        const b = await world.newRunner().run(orderId);
        await world.market.venue.settled();

        expect([a.status, b.status]).not.toContain('suspended');
        const events = await world.events(orderId);
        expectEventsAgreeWithVenue(world, orderId, events);
        expect(streams(events).order.at(-1)).toBe('OrderFailed');
        // Voided by the worker past the deadline; on a machine slow enough that the late request
        // is processed first, refused by the venue as expired. Never executed, either way.
        expect(['voided', 'rejected']).toContain(venueWord(world, orderId));
        expect(events.at(-1)?.event_data).toMatchObject({ reason: 'deadline_exceeded' });
      });
    });

    describe('when two workers run one order with clocks 3 s apart', () => {
      const deadlineMs = 2_000;
      const skewed = (world: SagaWorld) => () => new Date(world.clock.now().getTime() + 3_000);

      it('and the worker ahead fails the order while the other is about to send: nothing executes', async () => {
        const world = sagaWorld(db, { settings: { deadlineMs } });
        const orderId = await world.place();
        const held = gate();
        const workerA = world.newRunner({
          beforeCommand: async (_, command) => {
            if (command === 'awaitingOutcome') await held.hold();
          },
        });
        const a = workerA.run(orderId);
        await held.arrived;

        // B's clock is past the deadline: it voids the key at the venue, then compensates.
        expect(await world.newRunner({ now: skewed(world) }).run(orderId)).toMatchObject({
          status: 'failed',
        });
        held.open();
        // A sends anyway (its clock says there is time): the venue answers that the key is voided.
        expect(await a).toMatchObject({ status: 'failed' });

        const events = await world.events(orderId);
        expectEventsAgreeWithVenue(world, orderId, events);
        expect(venueWord(world, orderId)).toBe('voided');
        expect(world.market.calls().executeSwap).toBe(1);
      });

      it('and the other worker executed first: the worker ahead learns it from the void and completes', async () => {
        const world = sagaWorld(db, { settings: { deadlineMs } });
        const orderId = await world.place();
        const held = gate();
        const workerA = world.newRunner({
          beforeAppend: async (_, command) => {
            if (command === 'awaitingOutcome') await held.hold();
          },
        });
        const a = workerA.run(orderId);
        await held.arrived;

        // The swap executed; A has not stored it yet. B, past the deadline, asks to void: executed.
        expect(await world.newRunner({ now: skewed(world) }).run(orderId)).toMatchObject({
          status: 'completed',
        });
        held.open();
        expect(await a).toMatchObject({ status: 'completed' });

        const events = await world.events(orderId);
        expectEventsAgreeWithVenue(world, orderId, events);
        expect(streams(events).order).toEqual([
          'OrderAccepted',
          'PriceQuoted',
          'SwapExecuting',
          'SwapExecuted',
          'OrderCompleted',
        ]);
      });
    });

    describe('when the venue cannot be reached past the deadline', () => {
      it('the saga stays suspended, compensates nothing, and settles once the venue answers', async () => {
        const world = sagaWorld(db, { settings: { deadlineMs: 1_000 } });
        const orderId = await world.place();
        world.market.venue.startOutage();
        expect((await world.runner.run(orderId)).status).toBe('suspended');

        world.clock.advance(5_000);
        expect((await world.newRunner().run(orderId)).status).toBe('suspended');
        expect(streams(await world.events(orderId)).order.at(-1)).toBe('SwapExecuting');

        world.market.venue.restore();
        expect(await world.newRunner().run(orderId)).toMatchObject({ status: 'failed' });
        expectEventsAgreeWithVenue(world, orderId, await world.events(orderId));
        expect(venueWord(world, orderId)).toBe('voided');
      });
    });

    describe('when a swap is executed late, after the deadline passed by the worker clock', () => {
      it('a late success is a success: the order completes', async () => {
        const world = sagaWorld(db, { settings: { deadlineMs: 1_000 } });
        const orderId = await world.place();
        // Executed, answer lost; then every call fails until the deadline has passed.
        world.market.venue.failNext('lost_answer');
        world.market.venue.failNext('outage', { call: 'findSwap', times: 100 });
        world.market.venue.failNext('outage', { times: 100 });
        expect((await world.runner.run(orderId)).status).toBe('suspended');

        world.clock.advance(10_000);
        world.market.venue.restore();
        // Lookups still fail: only the void, past the deadline, can tell what happened.
        world.market.venue.failNext('outage', { call: 'findSwap', times: 100 });
        expect(await world.newRunner().run(orderId)).toMatchObject({ status: 'completed' });
        expectEventsAgreeWithVenue(world, orderId, await world.events(orderId));
        expect(world.market.calls().voidSwap).toBeGreaterThanOrEqual(1);
      });
    });
  });
}

/**
 * A venue that breaks its contract: its lookups know nothing, and it answers `voided` while
 * letting the request execute all the same. What an auditor must assume a venue (or a bug) can do.
 */
export function venueIgnoringVoids(venue: TradeVenue): TradeVenue {
  return {
    executeSwap: (request, signal) => venue.executeSwap(request, signal),
    findSwap: () => Promise.resolve(undefined),
    voidSwap: (key): Promise<SwapOutcome> =>
      Promise.resolve({ status: 'voided', idempotency_key: key, voided_at: new Date().toISOString() }),
  };
}
