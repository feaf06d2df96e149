import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import type { EventMessage } from '../../src/app/messages.ts';
import { RetryLaterError } from '../../src/app/messages.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { differingFields, replay } from '../../src/app/projections.ts';
import { sagaConsumer } from '../../src/app/sagaConsumer.ts';
import { idempotencyKeyFor, positionIdFor } from '../../src/domain/ids.ts';
import { createInbox } from '../../src/infra/inbox.ts';
import { createReadModels } from '../../src/infra/readModels.ts';
import { sagaWorld } from '../helpers/saga.ts';

export type VenueFaultChoice = 'none' | 'error' | 'timeout' | 'lost_answer' | 'rejected';
export type PriceFaultChoice = 'none' | 'error' | 'unavailable';

export interface OrderCase {
  readonly amount: string;
  readonly pair: string;
  readonly venueFault: VenueFaultChoice;
  readonly priceFault: PriceFaultChoice;
  /** How many times its OrderAccepted is delivered (duplicates). */
  readonly copies: number;
}

export interface ReadModelScenario {
  readonly orders: readonly OrderCase[];
  /** Orders the deliveries of all orders (copies included) at random. */
  readonly shuffleSeed: number;
  /** Deliveries handled at once (duplicates may race). */
  readonly lanes: number;
}

export const readModelScenario: fc.Arbitrary<ReadModelScenario> = fc.record({
  orders: fc.array(
    fc.record({
      // 5,000,000 USDT is above the venue's liquidity; 0.0001 USDT buys too little BTC to deliver.
      amount: fc.constantFrom('100', '2500.5', '0.0001', '5000000'),
      pair: fc.constantFrom('USDT/BTC', 'USDT/ETH', 'USDC/BTC'),
      venueFault: fc.constantFrom<VenueFaultChoice>('none', 'error', 'timeout', 'lost_answer', 'rejected'),
      priceFault: fc.constantFrom<PriceFaultChoice>('none', 'error', 'unavailable'),
      copies: fc.integer({ min: 1, max: 3 }),
    }),
    { minLength: 1, maxLength: 5 },
  ),
  shuffleSeed: fc.nat(),
  lanes: fc.integer({ min: 1, max: 3 }),
});

/** A deterministic shuffle (mulberry32), so a failing seed replays the same delivery order. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/**
 * Runs a scenario: places the orders, scripts each one's faults at the simulated market, delivers
 * every OrderAccepted (with its duplicates) to the orchestrator in a shuffled order over a few
 * lanes, as a bus would (again after a suspension), then compares the read models of these orders
 * with a fresh replay of their events through the TypeScript fold.
 * @returns the disagreements, empty when the read models equal the replay.
 */
export async function runReadModelScenario(db: Database, scenario: ReadModelScenario): Promise<string[]> {
  const world = sagaWorld(db);
  const consumer = sagaConsumer(createInbox(db), world.runner);
  const deliveries: { message: EventMessage; redelivered: boolean }[] = [];
  const orderIds: string[] = [];
  for (const order of scenario.orders) {
    const [from_currency, to_currency] = order.pair.split('/') as [string, string];
    const orderId = await world.place({ from_amount: order.amount, from_currency, to_currency });
    orderIds.push(orderId);
    const key = idempotencyKeyFor(orderId);
    if (order.venueFault === 'rejected') world.market.venue.rejectNext('venue_rejected', { key });
    else if (order.venueFault !== 'none') world.market.venue.failNext(order.venueFault, { key });
    if (order.priceFault !== 'none')
      world.market.priceService.failNext(order.priceFault, { pair: order.pair });
    const [accepted] = await world.events(orderId);
    if (!accepted) throw new Error(`order ${orderId} has no OrderAccepted`);
    const { id: _id, created_at: _at, position: _position, ...message } = accepted;
    for (let copy = 0; copy < order.copies; copy++) deliveries.push({ message, redelivered: copy > 0 });
  }

  const queue = shuffled(deliveries, scenario.shuffleSeed);
  await Promise.all(
    Array.from({ length: scenario.lanes }, async () => {
      for (let delivery = queue.shift(); delivery; delivery = queue.shift()) {
        for (let attempt = 0; ; attempt++) {
          try {
            await consumer.handle(delivery.message, { redelivered: delivery.redelivered || attempt > 0 });
            break;
          } catch (error) {
            if (!(error instanceof RetryLaterError) || attempt > 100) throw error;
            await sleep(Math.min(50, 5 * 2 ** attempt));
          }
        }
      }
    }),
  );
  await world.market.venue.settled();

  const problems: string[] = [];
  const views = createReadModels(db);
  for (const orderId of orderIds) {
    const replayed = replay(await world.events(orderId));
    const order = await views.order(orderId);
    const expected = replayed.orders.get(orderId);
    if (!order || !expected) problems.push(`order ${orderId}: view ${!!order}, replay ${!!expected}`);
    else {
      if (order.status !== 'completed' && order.status !== 'failed') {
        problems.push(`order ${orderId} did not end: ${order.status}`);
      }
      const fields = differingFields('orders', expected, order);
      if (fields.length) problems.push(`order ${orderId} differs in ${fields.join(', ')}`);
    }
    const positionId = positionIdFor(orderId);
    const position = await views.position(positionId);
    const replayedPosition = replayed.positions.get(positionId);
    if (!!position !== !!replayedPosition) {
      problems.push(`position ${positionId}: view ${!!position}, replay ${!!replayedPosition}`);
    } else if (position && replayedPosition) {
      const fields = differingFields('positions', replayedPosition, position);
      if (fields.length) problems.push(`position ${positionId} differs in ${fields.join(', ')}`);
    }
  }
  return problems;
}

/** What a run of the property covered, for the report. */
export function describeReadModelCoverage(scenarios: readonly ReadModelScenario[]): string {
  const orders = scenarios.flatMap((s) => s.orders);
  const duplicates = orders.filter((o) => o.copies > 1).length;
  const faults = new Set(orders.map((o) => `${o.venueFault}/${o.priceFault}`));
  return `${scenarios.length} runs, ${orders.length} orders (${duplicates} delivered more than once), ${faults.size} fault combinations`;
}
