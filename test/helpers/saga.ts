import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { createOrderService } from '../../src/app/orders.ts';
import type { PlaceOrder } from '../../src/app/orders.ts';
import { createSagaRunner } from '../../src/app/sagaRunner.ts';
import type { SagaRunnerDeps } from '../../src/app/sagaRunner.ts';
import { DEFAULT_SAGA_SETTINGS } from '../../src/app/sagaSteps.ts';
import type { SagaSettings } from '../../src/app/sagaSteps.ts';
import { idempotencyKeyFor, positionIdFor } from '../../src/domain/ids.ts';
import { currencies, decimal } from '../../src/domain/money.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import type { StoredEvent } from '../../src/app/ports/eventStore.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createSimulatedMarket } from '../../src/infra/venues/simulatedMarket.ts';
import type { SimulatedMarket, SimulatedMarketOptions } from '../../src/infra/venues/simulatedMarket.ts';

/** A clock the test moves: sagas see time pass only when the test says so. */
export function testClock(start = Date.parse('2026-11-24T12:00:00.000Z')) {
  let now = start;
  return {
    now: () => new Date(now),
    advance(ms: number) {
      now += ms;
    },
  };
}

/**
 * The system clock, shifted by `offsetMs`: for tests where real time must pass (a venue that
 * processes requests late) and workers whose clocks disagree. `advance` shifts it further.
 */
export function realClock(offsetMs = 0) {
  let offset = offsetMs;
  return {
    now: () => new Date(Date.now() + offset),
    advance(ms: number) {
      offset += ms;
    },
  };
}

export type TestClock = ReturnType<typeof testClock>;

export const FAST_SETTINGS: SagaSettings = {
  ...DEFAULT_SAGA_SETTINGS,
  retries: 2,
  retryMinDelayMs: 1,
  retryMaxDelayMs: 2,
  callTimeoutMs: 200,
};

export const anOrder = (overrides: Partial<PlaceOrder> = {}): PlaceOrder => ({
  user_id: `user-${randomUUID()}`,
  from_amount: '1000',
  from_currency: 'USDT',
  to_currency: 'BTC',
  order_type: 'market',
  ...overrides,
});

export interface SagaWorld {
  readonly db: Database;
  readonly market: SimulatedMarket;
  readonly clock: TestClock;
  readonly runner: ReturnType<typeof createSagaRunner>;
  /** Another runner on the same store, market and settings (a second worker or process). */
  newRunner(overrides?: Partial<SagaRunnerDeps>): ReturnType<typeof createSagaRunner>;
  place(order?: Partial<PlaceOrder>): Promise<string>;
  /** The order's and its position's events, in the order they were stored. */
  events(orderId: string): Promise<StoredEvent[]>;
}

/**
 * The saga's real parts on a given database: event store, order intake, runner and the simulated
 * market, with a test clock. Hooks and settings can be overridden per world.
 */
export function sagaWorld(
  db: Database,
  options: {
    market?: SimulatedMarketOptions;
    settings?: Partial<SagaSettings>;
    runner?: Partial<SagaRunnerDeps>;
    /** The clock of the order intake, the market and the first runner (default a test clock). */
    clock?: TestClock;
  } = {},
): SagaWorld {
  const clock = options.clock ?? testClock();
  const market = createSimulatedMarket({ seed: 7, now: clock.now, ...options.market });
  const store = createEventStore(db);
  const orders = createOrderService({ store, now: clock.now, newId: randomUUID });
  const base: SagaRunnerDeps = {
    store,
    prices: market.priceService,
    venue: market.venue,
    currencies: currencies(),
    settings: { ...FAST_SETTINGS, ...options.settings },
    now: clock.now,
    newId: randomUUID,
    logger: silentLogger,
  };
  const newRunner = (overrides: Partial<SagaRunnerDeps> = {}) => createSagaRunner({ ...base, ...overrides });
  return {
    db,
    market,
    clock,
    runner: newRunner(options.runner),
    newRunner,
    async place(order = {}) {
      return (await orders.accept(anOrder(order), { causationId: null })).order_id;
    },
    events: (orderId) => store.loadStreams([orderId, positionIdFor(orderId)]),
  };
}

/** Event types per stream, for exact sequence assertions. */
export function streams(events: readonly StoredEvent[]) {
  return {
    order: events.filter((e) => e.aggregate_type === 'order').map((e) => e.event_type),
    position: events.filter((e) => e.aggregate_type === 'position').map((e) => e.event_type),
  };
}

const TERMINAL = new Set(['OrderCompleted', 'OrderFailed']);

/**
 * The guarantees of ARCHITECTURE.md a saga run can break on its own:
 * 1. exactly one terminal event, and nothing after it on the order stream;
 * 2. no swap executed twice for the order;
 * 5. versions 1..n without gaps on each stream;
 * 7. the position's totals equal the sum of its completed orders.
 */
export function assertSagaGuarantees(
  orderId: string,
  events: readonly StoredEvent[],
  market: SimulatedMarket,
): void {
  const order = events.filter((e) => e.aggregate_id === orderId);
  const position = events.filter((e) => e.aggregate_id === positionIdFor(orderId));

  const terminal = order.filter((e) => TERMINAL.has(e.event_type));
  expect(terminal, 'exactly one terminal event').toHaveLength(1);
  expect(order.at(-1)?.event_type, 'nothing follows the terminal event').toBe(terminal[0]?.event_type);

  expect(
    market.venue.executions(idempotencyKeyFor(orderId)),
    'swap executed at most once',
  ).toBeLessThanOrEqual(1);

  for (const stream of [order, position]) {
    expect(
      stream.map((e) => e.version),
      'versions 1..n',
    ).toEqual(stream.map((_, i) => i + 1));
  }

  const completed = order.find((e) => e.event_type === 'OrderCompleted');
  const updates = position.filter((e) => e.event_type === 'PositionUpdated');
  const last = updates.at(-1)?.event_data as
    { total_from_amount: string; total_to_amount: string } | undefined;
  if (completed) {
    const data = completed.event_data as { from_amount: string; to_amount: string };
    expect(last, 'a completed order updates its position').toBeDefined();
    expect(decimal(last?.total_from_amount ?? '0').eq(data.from_amount)).toBe(true);
    expect(decimal(last?.total_to_amount ?? '0').eq(data.to_amount)).toBe(true);
    expect(market.venue.executions(idempotencyKeyFor(orderId)), 'a completed order was executed').toBe(1);
  } else {
    expect(market.venue.executions(idempotencyKeyFor(orderId)), 'a failed order swapped nothing').toBe(0);
    if (order.some((e) => e.event_type === 'SwapExecuting')) {
      // A swap that was sent (or may have been) is compensated only on the venue's final word.
      const recorded = market.venue.recorded(idempotencyKeyFor(orderId));
      expect(
        recorded !== undefined && recorded !== 'pending' ? recorded.status : recorded,
        'the venue voided or refused the swap of a failed order',
      ).toMatch(/^(voided|rejected)$/);
    }
    expect(updates, 'a failed order adds nothing to its position').toEqual([]);
    if (position.length > 0)
      expect(position.at(-1)?.event_type, 'its position is closed').toBe('PositionClosed');
  }
}
