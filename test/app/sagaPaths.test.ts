import { getSimplePaths } from '@xstate/graph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replaySaga } from '../../src/app/sagaRunner.ts';
import type { FailureReason } from '../../src/domain/events.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { orderSaga, SAGA, SAGA_STEPS } from '../../src/machines/orderSaga.ts';
import type { SagaCommand, SagaEvent } from '../../src/machines/orderSaga.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { assertSagaGuarantees, FAST_SETTINGS, sagaWorld, streams } from '../helpers/saga.ts';
import type { SagaWorld } from '../helpers/saga.ts';

/*
 * Model-based: every simple path of the saga machine from @xstate/graph, each driven through the
 * REAL runner on PGlite with the simulated market scripted to produce it. A new state or
 * transition in the machine adds paths here; a path nobody knows how to produce fails loudly.
 */

const ORDER = {
  order_id: '00000000-0000-4000-8000-000000000001',
  user_id: 'model',
  from_amount: '1000',
  from_currency: 'USDT',
  to_currency: 'BTC',
  order_type: 'market',
  accepted_at: '2026-11-24T12:00:00.000Z',
} as const;
const POSITION = '00000000-0000-4000-8000-000000000002';
const AT = '2026-11-24T12:00:01.000Z';

/** Concrete example events (the graph needs payloads: the machine folds them into its context). */
const stepFailed = (reason: FailureReason): SagaEvent => ({ type: 'StepFailed', reason, detail: 'model' });

/** A step's state as the snapshot shows it (`executingSwap.awaitingOutcome`). */
const stateOfStep = (step: SagaCommand): string => {
  const within = (SAGA[step] as { within?: string }).within;
  return within ? `${within}.${step}` : step;
};

/** Which failures each state can meet, as the saga's declaration lists them. */
const FAILURES_IN: Record<string, readonly FailureReason[]> = Object.fromEntries(
  SAGA_STEPS.map((step) => [stateOfStep(step), Object.keys(SAGA[step].failures) as FailureReason[]]),
);

const stateKey = (value: unknown): string =>
  typeof value === 'string'
    ? value
    : Object.entries(value as Record<string, unknown>)
        .map(([k, v]) => `${k}.${stateKey(v)}`)
        .join('');

const EVENTS: readonly SagaEvent[] = [
  { type: 'OrderAccepted', data: ORDER },
  { type: 'PriceQuoted', data: { price: '0.00001', to_amount: '0.01', quoted_at: AT, source: 'model' } },
  {
    type: 'PositionCreated',
    data: {
      position_id: POSITION,
      user_id: 'model',
      order_id: ORDER.order_id,
      from_currency: 'USDT',
      to_currency: 'BTC',
      created_at: AT,
    },
  },
  { type: 'SwapExecuting', data: { idempotency_key: 'k', position_id: POSITION, started_at: AT } },
  {
    type: 'SwapExecuted',
    data: { tx_hash: '0x1', to_amount: '0.01', executed_price: '0.00001', executed_at: AT },
  },
  {
    type: 'OrderCompleted',
    data: {
      order_id: ORDER.order_id,
      position_id: POSITION,
      from_amount: '1000',
      from_currency: 'USDT',
      to_amount: '0.01',
      to_currency: 'BTC',
      executed_price: '0.00001',
      tx_hash: '0x1',
      completed_at: AT,
    },
  },
  {
    type: 'OrderFailed',
    data: { order_id: ORDER.order_id, reason: 'venue_rejected', failed_step: 'quote_price', failed_at: AT },
  },
];

/** States where the deadline stops the step from running (`deadline: 'compensate'`). */
const DEADLINE_IN = new Set(
  SAGA_STEPS.filter((step) => SAGA[step].deadline === 'compensate').map(stateOfStep),
);
const DEADLINE_PASSED: SagaEvent = { type: 'DeadlinePassed', detail: 'model' };

const paths = getSimplePaths(orderSaga, {
  events: (snapshot) => [
    ...EVENTS,
    ...(FAILURES_IN[stateKey(snapshot.value)] ?? []).map(stepFailed),
    ...(DEADLINE_IN.has(stateKey(snapshot.value)) ? [DEADLINE_PASSED] : []),
  ],
  serializeState: (snapshot) => JSON.stringify(snapshot.value),
  serializeEvent: (event) =>
    event.type === 'StepFailed' ? `StepFailed(${(event as { reason: string }).reason})` : event.type,
}).filter((path) => path.state.status === 'done');

type Step = { readonly from: string; readonly event: SagaEvent };

/** The path as (state it left, event taken) pairs. */
function stepsOf(path: (typeof paths)[number]): Step[] {
  let from = 'awaitingOrder';
  return path.steps.slice(1).map((step) => {
    const result = { from, event: step.event };
    from = stateKey(step.state.value);
    return result;
  });
}

const describePath = (steps: readonly Step[]) =>
  steps
    .map(({ from, event }) =>
      event.type === 'StepFailed'
        ? `${from}:StepFailed(${(event as { reason: string }).reason})`
        : event.type === 'DeadlinePassed'
          ? `${from}:DeadlinePassed`
          : event.type,
    )
    .join(' → ');

/** The step a state runs, so hooks can fire exactly there. */
const STEP_OF: Record<string, SagaCommand> = Object.fromEntries(
  SAGA_STEPS.map((step) => [stateOfStep(step), step]),
);

const DEADLINE = FAST_SETTINGS.deadlineMs;
const GRACE = FAST_SETTINGS.callTimeoutMs;

interface Scenario {
  orderAmount?: string;
  /** Set up the world once the order is placed. */
  arrange(world: SagaWorld, orderId: string, hooks: Hooks): void;
  /** The saga is expected to stop once (suspended or crashed) and be resumed by a new runner. */
  resumeAfter?: number;
  /** The resume is an operator's cancel (POST /admin/sagas/:id/cancel) rather than a sweep. */
  resumeWith?: { cancel: { detail: string } };
}

interface Hooks {
  command: Map<SagaCommand, () => void | Promise<void>>;
  after: Map<SagaCommand, () => void | Promise<void>>;
  before: Map<SagaCommand, () => void | Promise<void>>;
}

class Crash extends Error {}

/** How to make the world produce a failure in a given state. */
function failureScenario(from: string, reason: FailureReason): Scenario {
  const passDeadline = (world: SagaWorld) => world.clock.advance(DEADLINE + 1);
  switch (`${from}:${reason}`) {
    case 'quotingPrice:price_unavailable':
      return { arrange: (w) => w.market.priceService.failNext('unavailable') };
    case 'quotingPrice:venue_rejected':
      // 0.000001 USDT buys less than one satoshi: nothing to deliver.
      return { orderAmount: '0.000001', arrange: () => {} };
    case 'executingSwap.awaitingOutcome:insufficient_liquidity':
      return { orderAmount: '2000000', arrange: () => {} };
    case 'executingSwap.awaitingOutcome:slippage_exceeded':
      // The market runs away between quote and execution: BTC 5 % dearer.
      return {
        arrange: (w, _, hooks) =>
          hooks.after.set('quotingPrice', () => {
            const btc = w.market.model.usdPrice('BTC');
            if (btc) w.market.model.setUsdPrice('BTC', btc.times('1.05').toFixed(2));
          }),
      };
    case 'executingSwap.awaitingOutcome:venue_rejected':
      return { arrange: (w) => w.market.venue.rejectNext('venue_rejected') };
    case 'executingSwap.awaitingOutcome:cancelled':
      // SwapExecuting is stored and the worker dies; an operator cancels: the venue voids the key.
      return {
        resumeAfter: 1,
        resumeWith: { cancel: { detail: 'cancelled by an operator: model' } },
        arrange: (_, __, hooks) =>
          hooks.after.set('sendingSwap', () => {
            throw new Crash('crash after SwapExecuting');
          }),
      };
    case 'executingSwap.awaitingOutcome:deadline_exceeded':
      // The deadline passes right after SwapExecuting is stored: nothing is sent, the outcome is
      // unknown to a new worker, which compensates only once no call can still be in flight.
      return {
        resumeAfter: 1,
        arrange: (w, _, hooks) =>
          hooks.after.set('sendingSwap', () => {
            passDeadline(w);
            throw new Crash('crash after SwapExecuting');
          }),
      };
    default:
      if (reason === 'deadline_exceeded') {
        // Time runs out just as the state's command is about to run.
        const command = STEP_OF[from];
        return { arrange: (w, _, hooks) => command && hooks.command.set(command, () => passDeadline(w)) };
      }
      throw new Error(`No scenario produces StepFailed(${reason}) in ${from}: add one`);
  }
}

/**
 * OrderFailed seen directly in a state: the saga was compensated while there — by another worker
 * (raced here while quoting), or by this one, its StepFailed not being stored (a replay shows it so).
 */
function compensatedElsewhere(from: string): Scenario {
  if (from !== 'quotingPrice') return failureScenario(from, 'deadline_exceeded');
  return {
    arrange: (world, orderId, hooks) =>
      hooks.before.set('quotingPrice', async () => {
        world.clock.advance(DEADLINE + GRACE + 1);
        expect((await world.newRunner().run(orderId)).status).toBe('failed');
      }),
  };
}

function scenarioFor(steps: readonly Step[]): Scenario {
  const last = steps.at(-1);
  const beforeLast = steps.at(-2);
  if (last?.event.type === 'OrderCompleted') return { arrange: () => {} };
  if (beforeLast?.event.type === 'StepFailed') {
    return failureScenario(beforeLast.from, (beforeLast.event as { reason: FailureReason }).reason);
  }
  if (beforeLast?.event.type === 'DeadlinePassed')
    return failureScenario(beforeLast.from, 'deadline_exceeded');
  if (last?.event.type === 'OrderFailed') return compensatedElsewhere(last.from);
  throw new Error(`No scenario for path ${describePath(steps)}`);
}

/** The stored events a path implies, per stream. */
function expectedStreams(steps: readonly Step[]) {
  const types = steps.map((s) => s.event.type);
  const order = types.filter((t) => t !== 'StepFailed' && t !== 'DeadlinePassed' && t !== 'PositionCreated');
  const opened = types.includes('PositionCreated');
  const completed = types.includes('OrderCompleted');
  const position = opened ? ['PositionCreated', completed ? 'PositionUpdated' : 'PositionClosed'] : [];
  return { order, position };
}

describe('every path of the order saga, driven through the real runner', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  it('covers the happy path and a compensation from every active state', () => {
    const described = paths.map((p) => describePath(stepsOf(p)));
    expect(described).toContain(
      'OrderAccepted → PriceQuoted → PositionCreated → SwapExecuting → SwapExecuted → OrderCompleted',
    );
    for (const [state, failures] of Object.entries(FAILURES_IN)) {
      for (const reason of failures)
        expect(described.some((d) => d.includes(`${state}:StepFailed(${reason})`))).toBe(true);
    }
    for (const state of DEADLINE_IN)
      expect(described.some((d) => d.includes(`${state}:DeadlinePassed`))).toBe(true);
  });

  it.each(paths.map((p) => [describePath(stepsOf(p)), p] as const))('%s', async (_, path) => {
    const steps = stepsOf(path);
    const scenario = scenarioFor(steps);
    const hooks: Hooks = { command: new Map(), after: new Map(), before: new Map() };
    const world = sagaWorld(db, {
      runner: {
        beforeCommand: (_, command) => hooks.command.get(command)?.(),
        afterAppend: (_, command) => hooks.after.get(command)?.(),
        beforeAppend: (_, command) => hooks.before.get(command)?.(),
      },
    });
    const orderId = await world.place(scenario.orderAmount ? { from_amount: scenario.orderAmount } : {});
    scenario.arrange(world, orderId, hooks);

    let stops = 0;
    let result = await world.runner.run(orderId).catch((error: unknown) => {
      if (error instanceof Crash) return { status: 'crashed' as const };
      throw error;
    });
    while (result.status === 'suspended' || result.status === 'crashed') {
      stops += 1;
      expect(stops, 'stops more often than the scenario expects').toBeLessThanOrEqual(
        scenario.resumeAfter ?? 0,
      );
      world.clock.advance(GRACE + 1);
      result = await world.newRunner().run(orderId, scenario.resumeWith ?? {});
    }
    expect(stops).toBe(scenario.resumeAfter ?? 0);

    const finalState = path.state.value as string;
    expect(result.status).toBe(finalState);
    const events = await world.events(orderId);
    expect(streams(events)).toEqual(expectedStreams(steps));
    assertSagaGuarantees(orderId, events, world.market);
    expect(replaySaga(events, orderSaga).snapshot.value).toBe(finalState);
    const failure = events.find((e) => e.event_type === 'OrderFailed')?.event_data as
      { reason?: string } | undefined;
    const failedStep = steps.findLast(
      (s) => s.event.type === 'StepFailed' || s.event.type === 'DeadlinePassed',
    )?.event as { type: string; reason?: string } | undefined;
    if (failedStep) expect(failure?.reason).toBe(failedStep.reason ?? 'deadline_exceeded');
  });
});
