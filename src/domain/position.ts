import { IllegalTransitionError } from './errors.ts';
import { assertNever } from './events.ts';
import type { PositionCreated, PositionEvent } from './events.ts';
import { sum } from './money.ts';

export { positionIdFor } from './ids.ts';

/**
 * The position aggregate as a decider: what a user holds from their completed orders in one
 * currency pair. Pure: no I/O and no clock — time arrives on the command.
 */

export type OpenPosition = {
  readonly status: 'open';
  readonly position_id: string;
  readonly user_id: string;
  /** The order that opened the position. */
  readonly order_id: string;
  readonly from_currency: string;
  readonly to_currency: string;
  /** Running totals as decimal strings; "0" until an order is added. */
  readonly total_from_amount: string;
  readonly total_to_amount: string;
  /** Orders already counted, so a redelivered AddOrder is not counted twice. */
  readonly order_ids: readonly string[];
  readonly created_at: string;
};

export type ClosedPosition = Omit<OpenPosition, 'status'> & {
  readonly status: 'closed';
  readonly reason: string;
  readonly closed_at: string;
};

export type PositionState = { readonly status: 'initial' } | OpenPosition | ClosedPosition;

export type PositionStatus = PositionState['status'];

export const POSITION_STATUSES = ['initial', 'open', 'closed'] as const satisfies readonly PositionStatus[];

export const initialPositionState: PositionState = { status: 'initial' };

export type CreatePosition = {
  readonly type: 'CreatePosition';
  /** PositionCreated's data but its time, which the command's `now` gives. */
  readonly data: Omit<PositionCreated['data'], 'created_at'>;
  readonly now: string;
};

export type AddOrder = {
  readonly type: 'AddOrder';
  readonly data: {
    readonly order_id: string;
    readonly from_amount: string;
    readonly to_amount: string;
    readonly executed_price: string;
  };
  readonly now: string;
};

export type ClosePosition = {
  readonly type: 'ClosePosition';
  readonly data: { readonly reason: string };
  readonly now: string;
};

export type PositionCommand = CreatePosition | AddOrder | ClosePosition;

/** How each command reads in an error message: "Cannot <words> a position that is <status>". */
export const POSITION_COMMAND_WORDS = {
  CreatePosition: 'create',
  AddOrder: 'add an order to',
  ClosePosition: 'close',
} as const satisfies Record<PositionCommand['type'], string>;

function illegal(state: PositionState, command: PositionCommand, why: string): IllegalTransitionError {
  return new IllegalTransitionError('position', state.status, POSITION_COMMAND_WORDS[command.type], why);
}

/**
 * Decides which events a command produces on a position in the given state.
 *
 * Adding an order that was already added, or closing a closed position, yields no events: the
 * saga and consumers may deliver the same step twice.
 *
 * @throws IllegalTransitionError when the position's status does not allow the command.
 */
export function decidePosition(command: PositionCommand, state: PositionState): PositionEvent[] {
  switch (command.type) {
    case 'CreatePosition': {
      if (state.status !== 'initial') throw illegal(state, command, 'a position is created once');
      return [{ type: 'PositionCreated', data: { ...command.data, created_at: command.now } }];
    }
    case 'AddOrder': {
      if (state.status === 'initial') throw illegal(state, command, 'there is no position yet');
      if (state.status === 'closed') throw illegal(state, command, 'a closed position takes no more orders');
      if (state.order_ids.includes(command.data.order_id)) return [];
      return [
        {
          type: 'PositionUpdated',
          data: {
            position_id: state.position_id,
            ...command.data,
            total_from_amount: sum(state.total_from_amount, command.data.from_amount),
            total_to_amount: sum(state.total_to_amount, command.data.to_amount),
            updated_at: command.now,
          },
        },
      ];
    }
    case 'ClosePosition': {
      if (state.status === 'closed') return [];
      if (state.status === 'initial') throw illegal(state, command, 'there is no position yet');
      return [
        {
          type: 'PositionClosed',
          data: { position_id: state.position_id, reason: command.data.reason, closed_at: command.now },
        },
      ];
    }
    default:
      return assertNever(command);
  }
}

/** A stored stream whose events do not follow one another is corrupt; folding on would hide it. */
function corrupt(state: PositionState, event: PositionEvent): Error {
  return new Error(
    `Position event ${event.type} cannot follow status ${state.status}: the stream is corrupt`,
  );
}

/**
 * Applies one stored event to a position's state. Totals are taken from the event, which carries
 * them, so a replay shows exactly what was recorded.
 *
 * @throws Error when the event cannot follow the state (a corrupt stream), never for business reasons.
 */
export function evolvePosition(state: PositionState, event: PositionEvent): PositionState {
  switch (event.type) {
    case 'PositionCreated': {
      if (state.status !== 'initial') throw corrupt(state, event);
      const { position_id, user_id, order_id, from_currency, to_currency, created_at } = event.data;
      return {
        status: 'open',
        position_id,
        user_id,
        order_id,
        from_currency,
        to_currency,
        total_from_amount: '0',
        total_to_amount: '0',
        order_ids: [],
        created_at,
      };
    }
    case 'PositionUpdated': {
      if (state.status !== 'open') throw corrupt(state, event);
      return {
        ...state,
        total_from_amount: event.data.total_from_amount,
        total_to_amount: event.data.total_to_amount,
        order_ids: [...state.order_ids, event.data.order_id],
      };
    }
    case 'PositionClosed': {
      if (state.status !== 'open') throw corrupt(state, event);
      return { ...state, status: 'closed', reason: event.data.reason, closed_at: event.data.closed_at };
    }
    default:
      return assertNever(event);
  }
}

/** Rebuilds a position's state from its stored events, oldest first. */
export function foldPosition(events: readonly PositionEvent[]): PositionState {
  return events.reduce(evolvePosition, initialPositionState);
}
