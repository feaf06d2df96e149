import { assign, setup } from 'xstate';
import type { FailureReason, OrderEvent, PositionEvent, SagaStep } from '../domain/events.ts';
import { evolveOrder, initialOrderState } from '../domain/order.ts';
import type { OrderState } from '../domain/order.ts';
import { evolvePosition, initialPositionState } from '../domain/position.ts';
import type { PositionState } from '../domain/position.ts';

/**
 * A step that could not succeed: the outcome that sends the saga into compensation. It is not
 * stored; the compensation it causes (OrderFailed, PositionClosed) is.
 */
export type StepFailed = {
  readonly type: 'StepFailed';
  readonly reason: FailureReason;
  readonly failed_step: SagaStep;
  readonly detail?: string;
};

/** The saga's events: the stored domain events of the order and its position, and step outcomes. */
export type SagaEvent = OrderEvent | PositionEvent | StepFailed;

/** The commands a state asks the runner to carry out, as data (entry action `runStep`). */
export type SagaCommand =
  'QuotePrice' | 'OpenPosition' | 'StartSwap' | 'ExecuteSwap' | 'CompleteOrder' | 'Compensate';

export interface SagaContext {
  /** The order aggregate folded from its events: the saga's memory is the event stream. */
  readonly order: OrderState;
  readonly position: PositionState;
  /** Why the saga compensates, once a step has failed. */
  readonly failure: Omit<StepFailed, 'type'> | null;
}

const runStep = (command: SagaCommand) => ({ type: 'runStep', params: { command } }) as const;

/**
 * The order saga: quote a price, open a position, execute the swap, then complete the order and
 * update the position together — or compensate.
 *
 * It does no I/O. Each state's entry action `runStep` names the command the runner must carry
 * out; the runner stores the command's events and only then sends them here. Replaying stored
 * events through `transition()` therefore rebuilds the saga without running any step again.
 *
 * OrderFailed is accepted in every active state: another worker (or the deadline) may have
 * compensated while this one was still working on an earlier step.
 */
export const orderSaga = setup({
  types: {
    context: {} as SagaContext,
    events: {} as SagaEvent,
  },
  actions: {
    /** Provided by the runner (`machine.provide`); a no-op here so the machine stays pure. */
    runStep: (_, _params: { command: SagaCommand }) => {},
    applyOrderEvent: assign({
      order: ({ context, event }) => evolveOrder(context.order, event as OrderEvent),
    }),
    applyPositionEvent: assign({
      position: ({ context, event }) => evolvePosition(context.position, event as PositionEvent),
    }),
    recordFailure: assign({
      failure: ({ event }) => {
        const { type: _type, ...failure } = event as StepFailed;
        return failure;
      },
    }),
  },
}).createMachine({
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
    quotingPrice: {
      entry: runStep('QuotePrice'),
      on: {
        PriceQuoted: { target: 'openingPosition', actions: 'applyOrderEvent' },
        StepFailed: { target: 'compensating', actions: 'recordFailure' },
        OrderFailed: { target: 'failed', actions: 'applyOrderEvent' },
      },
    },
    openingPosition: {
      entry: runStep('OpenPosition'),
      on: {
        PositionCreated: { target: 'executingSwap', actions: 'applyPositionEvent' },
        StepFailed: { target: 'compensating', actions: 'recordFailure' },
        OrderFailed: { target: 'failed', actions: 'applyOrderEvent' },
      },
    },
    executingSwap: {
      initial: 'sendingSwap',
      on: {
        StepFailed: { target: 'compensating', actions: 'recordFailure' },
        OrderFailed: { target: 'failed', actions: 'applyOrderEvent' },
      },
      states: {
        /** SwapExecuting is stored before the venue is called: afterwards the outcome may be unknown. */
        sendingSwap: {
          entry: runStep('StartSwap'),
          on: { SwapExecuting: { target: 'awaitingOutcome', actions: 'applyOrderEvent' } },
        },
        awaitingOutcome: {
          entry: runStep('ExecuteSwap'),
          on: { SwapExecuted: { target: '#orderSaga.completing', actions: 'applyOrderEvent' } },
        },
      },
    },
    completing: {
      entry: runStep('CompleteOrder'),
      on: { OrderCompleted: { target: 'completed', actions: 'applyOrderEvent' } },
    },
    compensating: {
      entry: runStep('Compensate'),
      on: { OrderFailed: { target: 'failed', actions: 'applyOrderEvent' } },
    },
    completed: { type: 'final' },
    failed: { type: 'final' },
  },
});

export type OrderSagaMachine = typeof orderSaga;
