import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { idempotencyKeyFor } from '../../src/domain/ids.ts';
import type { Database } from '../../src/app/ports/database.ts';
import type { SagaCommand } from '../../src/machines/orderSaga.ts';
import { realClock, sagaWorld } from '../helpers/saga.ts';

/** Where worker A dies in an order's saga, if at all. */
export type CrashPoint = 'none' | 'before_send' | 'after_send';

export interface OrderScenario {
  /** How long the venue takes to process the swap request after it arrives. */
  readonly processingDelayMs: number;
  /** The venue executes the first request but its answer is lost. */
  readonly lostAnswer: boolean;
  readonly crash: CrashPoint;
  /** When worker B starts on the order, after worker A started (they may race). */
  readonly workerBAfterMs: number;
}

export interface Scenario {
  readonly deadlineMs: number;
  /** Each worker's clock against the venue's (real time), in ms: B's may be seconds ahead. */
  readonly clockOffsets: readonly [number, number];
  readonly orders: readonly OrderScenario[];
}

export const scenarioArbitrary: fc.Arbitrary<Scenario> = fc.record({
  deadlineMs: fc.integer({ min: 40, max: 250 }),
  clockOffsets: fc.tuple(fc.integer({ min: -300, max: 300 }), fc.integer({ min: -300, max: 3_000 })),
  orders: fc.array(
    fc.record({
      processingDelayMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 300 })),
      lostAnswer: fc.boolean(),
      crash: fc.constantFrom<CrashPoint>('none', 'before_send', 'after_send'),
      workerBAfterMs: fc.integer({ min: 0, max: 200 }),
    }),
    { minLength: 1, maxLength: 4 },
  ),
});

class Crash extends Error {}

/** One disagreement between our events and the venue's ledger. */
export interface Mismatch {
  readonly orderId: string;
  readonly problem: string;
}

/**
 * Runs a scenario: two workers (A, which may crash, and B, which resumes) with their own clocks
 * drive each order against a venue that may process late or lose answers; then compares, for
 * every order, the stored events with the venue's ledger once every request was processed:
 * completed ⇔ executed once with the same tx hash; failed ⇒ not executed; every order ended.
 */
export async function runScenario(db: Database, scenario: Scenario): Promise<Mismatch[]> {
  const world = sagaWorld(db, {
    clock: realClock(),
    settings: {
      deadlineMs: scenario.deadlineMs,
      callTimeoutMs: 40,
      retries: 1,
      retryMinDelayMs: 1,
      retryMaxDelayMs: 5,
    },
  });
  const crashes = new Map<string, CrashPoint>();
  const crashAt = (point: CrashPoint) => (orderId: string, command: SagaCommand) => {
    if (command === 'awaitingOutcome' && crashes.get(orderId) === point) {
      crashes.delete(orderId);
      throw new Crash(`worker A crashed ${point} for ${orderId}`);
    }
  };
  const workerA = world.newRunner({
    now: realClock(scenario.clockOffsets[0]).now,
    beforeCommand: crashAt('before_send'),
    beforeAppend: crashAt('after_send'),
  });
  const workerB = world.newRunner({ now: realClock(scenario.clockOffsets[1]).now });

  const orderIds = await Promise.all(
    scenario.orders.map(async (order) => {
      const orderId = await world.place();
      const key = idempotencyKeyFor(orderId);
      world.market.venue.delayNext(order.processingDelayMs, { key });
      if (order.lostAnswer) world.market.venue.failNext('lost_answer', { key });
      crashes.set(orderId, order.crash);
      return orderId;
    }),
  );

  const ended = await Promise.all(
    scenario.orders.map(async (order, i) => {
      const orderId = orderIds[i] as string;
      const a = workerA.run(orderId).catch((error: unknown) => {
        if (!(error instanceof Crash)) throw error;
      });
      await sleep(order.workerBAfterMs);
      // B resumes until the saga ends: a suspended saga is delivered again, as the bus would.
      let ended = false;
      for (let attempt = 0; attempt < 200 && !ended; attempt++) {
        const result = await workerB.run(orderId);
        ended = result.status === 'completed' || result.status === 'failed';
        if (!ended) await sleep(10);
      }
      await a;
      return ended;
    }),
  );
  await world.market.venue.settled();

  const mismatches: Mismatch[] = [];
  for (const [i, orderId] of orderIds.entries()) {
    const events = await world.events(orderId);
    const types = events.filter((e) => e.aggregate_id === orderId).map((e) => e.event_type);
    const executed = events.find((e) => e.event_type === 'SwapExecuted');
    const ledger = world.market.venue
      .ledger()
      .filter((e) => e.idempotency_key === idempotencyKeyFor(orderId));
    const terminal = types.filter((t) => t === 'OrderCompleted' || t === 'OrderFailed');
    if (!ended[i] || terminal.length !== 1) {
      mismatches.push({ orderId, problem: `did not end once: ${types.join(', ')}` });
    }
    if (ledger.length > 1) mismatches.push({ orderId, problem: `executed ${ledger.length} times` });
    if (types.includes('OrderFailed') && ledger.length > 0) {
      mismatches.push({ orderId, problem: 'failed, but the venue executed its swap' });
    }
    if (executed && (executed.event_data as { tx_hash: string }).tx_hash !== ledger[0]?.tx_hash) {
      mismatches.push({ orderId, problem: 'SwapExecuted stored, but no matching execution at the venue' });
    }
    if (!executed && ledger.length > 0 && !types.includes('OrderFailed')) {
      mismatches.push({ orderId, problem: 'executed at the venue, no SwapExecuted' });
    }
  }
  return mismatches;
}

/** Counts what a run of the property covered, for the report. */
export function describeCoverage(scenarios: readonly Scenario[]): string {
  const orders = scenarios.flatMap((s) => s.orders);
  const combos = new Set(
    scenarios.flatMap((s) =>
      s.orders.map((o) =>
        [
          o.processingDelayMs === 0
            ? 'at once'
            : o.processingDelayMs > s.deadlineMs
              ? 'after deadline'
              : 'late',
          o.lostAnswer ? 'lost answer' : 'answer',
          o.crash,
          Math.sign(s.clockOffsets[0] - s.clockOffsets[1]),
        ].join('/'),
      ),
    ),
  );
  return `${scenarios.length} runs, ${orders.length} orders, ${combos.size} distinct fault combinations`;
}
