import { StateMachine } from 'xstate';
import type { AnyStateMachine } from 'xstate';
import { orderSaga } from '../../src/machines/orderSaga.ts';

/*
 * Deliberately changed versions of the order saga, built from its config, to show that the golden
 * histories and `replay-check` catch a change that needs a new version.
 */

/** A state's config, loosely: the changes add states and events the released types do not know. */
type State = { readonly on?: object } & Record<string, unknown>;
type States = Record<string, State>;

function changed(states: (released: States) => States): AnyStateMachine {
  const released = orderSaga.config.states as unknown as States;
  const config = { ...orderSaga.config, states: states(released) } as unknown as typeof orderSaga.config;
  return new StateMachine(config, orderSaga.implementations);
}

/**
 * A new step between quoting and opening the position: the quote must be confirmed. A saga that
 * has stored PriceQuoted and PositionCreated cannot be replayed any more: PositionCreated is not
 * accepted while the quote is being confirmed.
 */
export const withQuoteConfirmation = changed((released) => ({
  ...released,
  quotingPrice: {
    ...released.quotingPrice,
    on: {
      ...released.quotingPrice?.on,
      PriceQuoted: { target: 'confirmingQuote', actions: 'applyOrderEvent' },
    },
  },
  confirmingQuote: {
    entry: { type: 'runStep', params: { step: 'confirmingQuote' } },
    on: {
      QuoteConfirmed: { target: 'openingPosition' },
      OrderFailed: { target: 'failed', actions: 'applyOrderEvent' },
    },
  },
}));

/** `quotingPrice` renamed `pricing`: every saga replays, but one in flight is in a state the old machine does not have. */
export const withRenamedQuoting = changed(({ quotingPrice, awaitingOrder, ...rest }) => ({
  awaitingOrder: {
    ...awaitingOrder,
    on: { OrderAccepted: { target: 'pricing', actions: 'applyOrderEvent' } },
  },
  pricing: quotingPrice ?? {},
  ...rest,
}));

/** Quoting no longer names its command on entry (say, it became an invoke): a saga waiting there has nothing to run. */
export const withSilentQuoting = changed(({ quotingPrice, ...rest }) => ({
  ...rest,
  quotingPrice: { ...quotingPrice, entry: [] },
}));
