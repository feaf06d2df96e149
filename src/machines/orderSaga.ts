import { assign, setup } from 'xstate';
import type { FailureReason, OrderEvent, PositionEvent, SagaStep } from '../domain/events.ts';
import { evolveOrder, initialOrderState } from '../domain/order.ts';
import type { OrderState } from '../domain/order.ts';
import { evolvePosition, initialPositionState } from '../domain/position.ts';
import type { PositionState } from '../domain/position.ts';

/**
 * The order saga, read top to bottom: one entry per step. A step is a state of the machine and
 * has one name, the state's. Each entry says what the step does, whether it calls the outside
 * world, the stored event that moves the saga on (and where to), the failures it can meet (with
 * what a user is told), what undoes it, and what its deadline does.
 *
 * The machine below, the step handlers' types (src/app/sagaSteps.ts), the runner's batching and
 * the model-based test (test/app/sagaPaths.test.ts) are all derived from this table: a new step
 * is added here, once.
 *
 * `failedStep` is how OrderFailed names the step in stored events (the event catalogue's codes):
 * stored data, kept as it is.
 */
export const SAGA = {
  quotingPrice: {
    does: 'asks the price service for the pair and fixes the price and the amount to deliver',
    io: true,
    moves: { PriceQuoted: 'openingPosition' },
    failures: {
      price_unavailable: 'no usable price for the pair: none, unusable, stale, or the service is down',
      venue_rejected: 'the pair is no longer supported, or the order is too small to deliver anything',
    },
    failedStep: 'quote_price',
    undo: 'nothing to undo: the order fails',
    deadline: 'compensate',
  },
  openingPosition: {
    does: 'opens the position the swap is booked into (its id derived from the order id)',
    io: false,
    moves: { PositionCreated: 'sendingSwap' },
    failures: {},
    failedStep: 'open_position',
    undo: 'close the position, fail the order',
    deadline: 'compensate',
  },
  sendingSwap: {
    does: 'stores SwapExecuting with the idempotency key, before the venue is ever called',
    io: false,
    moves: { SwapExecuting: 'awaitingOutcome' },
    failures: {},
    within: 'executingSwap',
    failedStep: 'execute_swap',
    undo: 'close the position, fail the order',
    deadline: 'compensate',
  },
  awaitingOutcome: {
    does:
      'sends the swap under its key (execute_before = acceptance + deadline, enforced by the venue) ' +
      'and learns its outcome from the venue alone: a lost answer is looked up, never guessed',
    io: true,
    moves: { SwapExecuted: 'completing' },
    failures: {
      insufficient_liquidity: 'the venue lacks the liquidity for the order',
      slippage_exceeded: 'the venue would deliver less than the quote allows',
      venue_rejected: 'the venue refused the swap',
      deadline_exceeded: 'the venue voided the swap (or refused it as expired) after the deadline',
      cancelled: 'an operator cancelled the order and the venue voided the swap',
    },
    within: 'executingSwap',
    failedStep: 'execute_swap',
    undo: 'close the position, fail the order: only once the venue said rejected or voided',
    deadline:
      'send nothing more; void the key at the venue: voided compensates, executed completes (late ' +
      'but done), unreachable waits',
  },
  completing: {
    does: 'completes the order and updates the position in one transaction',
    io: false,
    moves: { OrderCompleted: 'completed' },
    failures: {},
    failedStep: 'complete_order',
    undo: 'none: the swap executed, so the order can only complete',
    deadline: 'none',
  },
  compensating: {
    does: 'closes the position (if open) and fails the order with the reason recorded',
    io: false,
    moves: { OrderFailed: 'failed' },
    failures: {},
    failedStep: 'complete_order',
    undo: 'none: this is the undo',
    deadline: 'none',
  },
} as const satisfies Record<string, StepDeclaration>;

interface StepDeclaration {
  readonly does: string;
  /** Calls the outside world: starts a batch of its own, may suspend. */
  readonly io: boolean;
  /** The stored event that ends the step, and the state it leads to. */
  readonly moves: Readonly<Partial<Record<OrderEvent['type'] | PositionEvent['type'], string>>>;
  /** Each failure the step can meet, and what it means for the user. */
  readonly failures: Readonly<Partial<Record<FailureReason, string>>>;
  /** A parent state grouping steps in the statechart (the swap's two steps). */
  readonly within?: string;
  readonly failedStep: SagaStep;
  readonly undo: string;
  /**
   * `compensate`: past the deadline the step is not run; the runner sends DeadlinePassed and the
   * saga compensates with `deadline_exceeded`. Otherwise what the step does about its deadline.
   */
  readonly deadline: string;
}

/** A step of the saga: the name of the state that runs it. */
export type SagaCommand = keyof typeof SAGA;
export const SAGA_STEPS = Object.keys(SAGA) as SagaCommand[];

/** The failures a step can meet, as its declaration lists them. */
export type FailureOf<S extends SagaCommand> = keyof (typeof SAGA)[S]['failures'] & FailureReason;

/** Steps that call the outside world. */
export const IO_STEPS: ReadonlySet<SagaCommand> = new Set(SAGA_STEPS.filter((step) => SAGA[step].io));

/**
 * A step that could not succeed: the outcome that sends the saga into compensation. It is not
 * stored; the compensation it causes (OrderFailed, PositionClosed) is. The step that failed is
 * the state the machine is in.
 */
export type StepFailed = {
  readonly type: 'StepFailed';
  readonly reason: FailureReason;
  readonly detail?: string;
};

/**
 * The order's deadline passed before the step ran (the runner checks it against acceptance +
 * deadline before each step whose deadline is `compensate`). Not stored either.
 * `reason: 'cancelled'`: an operator cancelled the order, which ends it as its deadline would
 * (the saga compensates with reason `cancelled`). Only new events carry it: stored histories
 * replay exactly as before, so the machine keeps its version.
 */
export type DeadlinePassed = {
  readonly type: 'DeadlinePassed';
  readonly detail: string;
  readonly reason?: 'cancelled';
};

/** The saga's events: the stored domain events of the order and its position, and step outcomes. */
export type SagaEvent = OrderEvent | PositionEvent | StepFailed | DeadlinePassed;

/** Why the saga compensates: the reason, the step (as stored), and detail for operators. */
export interface SagaFailure {
  readonly reason: FailureReason;
  readonly failed_step: SagaStep;
  readonly detail?: string;
}

export interface SagaContext {
  /** The order aggregate folded from its events: the saga's memory is the event stream. */
  readonly order: OrderState;
  readonly position: PositionState;
  /** Why the saga compensates, once a step has failed. */
  readonly failure: SagaFailure | null;
}

const machineSetup = setup({
  types: {
    context: {} as SagaContext,
    events: {} as SagaEvent,
  },
  actions: {
    /** Provided by the runner's reading of the actions (as data); a no-op so the machine stays pure. */
    runStep: (_, _params: { step: SagaCommand }) => {},
    applyOrderEvent: assign({
      order: ({ context, event }) => evolveOrder(context.order, event as OrderEvent),
    }),
    applyPositionEvent: assign({
      position: ({ context, event }) => evolvePosition(context.position, event as PositionEvent),
    }),
    recordFailure: assign({
      failure: ({ event }, params: { failedStep: SagaStep }): SagaFailure => {
        const e = event as StepFailed | DeadlinePassed;
        const reason = e.type === 'DeadlinePassed' ? (e.reason ?? 'deadline_exceeded') : e.reason;
        return {
          reason,
          failed_step: params.failedStep,
          ...(e.detail === undefined ? {} : { detail: e.detail }),
        };
      },
    }),
  },
});

const POSITION_EVENTS = new Set<string>(['PositionCreated', 'PositionUpdated', 'PositionClosed']);

/** Where a state is in the machine, for `#orderSaga.<path>` targets. */
function pathOf(state: string): string {
  const declared = (SAGA as Record<string, StepDeclaration>)[state];
  return declared?.within ? `${declared.within}.${state}` : state;
}

/** One state of the machine, built from the step's declaration. */
function stateOf(step: SagaCommand) {
  const declared: StepDeclaration = SAGA[step];
  const on: Record<string, unknown> = {};
  for (const [event, target] of Object.entries(declared.moves)) {
    on[event] = {
      target: `#orderSaga.${pathOf(target)}`,
      actions: POSITION_EVENTS.has(event) ? 'applyPositionEvent' : 'applyOrderEvent',
    };
  }
  const failedStep = { type: 'recordFailure', params: { failedStep: declared.failedStep } } as const;
  const canFail = Object.keys(declared.failures).length > 0;
  if (canFail) on.StepFailed = { target: '#orderSaga.compensating', actions: failedStep };
  if (declared.deadline === 'compensate') {
    on.DeadlinePassed = { target: '#orderSaga.compensating', actions: failedStep };
  }
  if (canFail || declared.deadline === 'compensate') {
    // Another worker (or the deadline) may have compensated while this one was at this step.
    on.OrderFailed ??= { target: '#orderSaga.failed', actions: 'applyOrderEvent' };
  }
  return { entry: { type: 'runStep', params: { step } } as const, on };
}

/** The states of every step, grouped under their parent state where they have one. */
function stepStates() {
  const states: Record<string, unknown> = {};
  for (const step of SAGA_STEPS) {
    const within = (SAGA[step] as StepDeclaration).within;
    if (!within) {
      states[step] = stateOf(step);
      continue;
    }
    const group = (states[within] ??= { initial: step, states: {} }) as { states: Record<string, unknown> };
    group.states[step] = stateOf(step);
  }
  return states;
}

/**
 * The order saga as an XState machine, built from {@link SAGA}: quote a price, open a position,
 * execute the swap, then complete the order and update the position together, or compensate.
 *
 * It does no I/O. Each state's entry action `runStep` names the step the runner must carry out;
 * the runner stores the step's events and only then sends them here. Replaying stored events
 * through `transition()` therefore rebuilds the saga without running any step again.
 *
 * The two swap steps share a parent state, `executingSwap`, as the statechart shows it.
 */
export const orderSaga = machineSetup.createMachine({
  id: 'orderSaga',
  context: { order: initialOrderState, position: initialPositionState, failure: null },
  initial: 'awaitingOrder',
  on: {
    // Position events never change which step is next; they only keep the position current.
    PositionUpdated: { actions: 'applyPositionEvent' },
    PositionClosed: { actions: 'applyPositionEvent' },
  },
  states: {
    awaitingOrder: {
      on: { OrderAccepted: { target: 'quotingPrice', actions: 'applyOrderEvent' } },
    },
    ...stepStates(),
    completed: { type: 'final' },
    failed: { type: 'final' },
  },
});

export type OrderSagaMachine = typeof orderSaga;

/** The steps a transition's actions start (the entry actions of the states it enters). */
export function stepsIn(actions: readonly { type: string; params?: unknown }[]): SagaCommand[] {
  return actions.flatMap((action) =>
    action.type === 'runStep' ? [(action.params as { step: SagaCommand }).step] : [],
  );
}
