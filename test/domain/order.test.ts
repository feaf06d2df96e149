import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { IllegalTransitionError } from '../../src/domain/errors.ts';
import type {
  OrderAccepted,
  OrderCompleted,
  OrderEvent,
  OrderFailed,
  PriceQuoted,
  SwapExecuted,
  SwapExecuting,
} from '../../src/domain/events.ts';
import { positionIdFor } from '../../src/domain/ids.ts';
import {
  decideOrder,
  evolveOrder,
  foldOrder,
  idempotencyKeyFor,
  initialOrderState,
  ORDER_COMMAND_WORDS,
  ORDER_STATUSES,
} from '../../src/domain/order.ts';
import type { OrderCommand, OrderStatus } from '../../src/domain/order.ts';
import { given } from '../helpers/decider.ts';

const T0 = '2026-11-24T12:00:00.000Z';
const T1 = '2026-11-24T12:00:01.000Z';
const T2 = '2026-11-24T12:00:02.000Z';
const T3 = '2026-11-24T12:00:03.000Z';
const T4 = '2026-11-24T12:00:04.000Z';
const T5 = '2026-11-24T12:00:05.000Z';

/** A fresh order with its own ids, and every event and command of its life. */
function anOrder() {
  const order_id = randomUUID();
  const user_id = randomUUID();
  const position_id = positionIdFor(order_id);
  const idempotency_key = idempotencyKeyFor(order_id);

  const accepted: OrderAccepted = {
    type: 'OrderAccepted',
    data: {
      order_id,
      user_id,
      from_amount: '1000',
      from_currency: 'USDT',
      to_currency: 'BTC',
      order_type: 'market',
      accepted_at: T0,
    },
  };
  const quoted: PriceQuoted = {
    type: 'PriceQuoted',
    data: { price: '0.00001', to_amount: '0.01', quoted_at: T1, source: 'simulated' },
  };
  const swapping: SwapExecuting = {
    type: 'SwapExecuting',
    data: { idempotency_key, position_id, started_at: T2 },
  };
  const swapped: SwapExecuted = {
    type: 'SwapExecuted',
    data: { tx_hash: '0xabc123', to_amount: '0.00999', executed_price: '0.00000999', executed_at: T3 },
  };
  const completed: OrderCompleted = {
    type: 'OrderCompleted',
    data: {
      order_id,
      position_id,
      from_amount: '1000',
      from_currency: 'USDT',
      to_amount: '0.00999',
      to_currency: 'BTC',
      executed_price: '0.00000999',
      tx_hash: '0xabc123',
      completed_at: T4,
    },
  };
  const failed: OrderFailed = {
    type: 'OrderFailed',
    data: { order_id, reason: 'price_unavailable', failed_step: 'quote_price', failed_at: T4 },
  };

  const commands = {
    AcceptOrder: {
      type: 'AcceptOrder',
      data: {
        order_id,
        user_id,
        from_amount: '1000',
        from_currency: 'USDT',
        to_currency: 'BTC',
        order_type: 'market',
      },
      now: T0,
    },
    QuotePrice: {
      type: 'QuotePrice',
      data: { price: '0.00001', to_amount: '0.01', source: 'simulated' },
      now: T1,
    },
    StartSwap: { type: 'StartSwap', data: { idempotency_key, position_id }, now: T2 },
    RecordSwap: {
      type: 'RecordSwap',
      data: { tx_hash: '0xabc123', to_amount: '0.00999', executed_price: '0.00000999' },
      now: T3,
    },
    CompleteOrder: { type: 'CompleteOrder', data: { position_id }, now: T4 },
    FailOrder: {
      type: 'FailOrder',
      data: { reason: 'price_unavailable', failed_step: 'quote_price' },
      now: T4,
    },
  } as const satisfies { [K in OrderCommand['type']]: Extract<OrderCommand, { type: K }> };

  /** Events that bring an order to each status. */
  const history: Record<OrderStatus, readonly OrderEvent[]> = {
    initial: [],
    accepted: [accepted],
    priced: [accepted, quoted],
    swapping: [accepted, quoted, swapping],
    swapped: [accepted, quoted, swapping, swapped],
    completed: [accepted, quoted, swapping, swapped, completed],
    failed: [accepted, failed],
  };

  return {
    order_id,
    user_id,
    position_id,
    idempotency_key,
    events: { accepted, quoted, swapping, swapped, completed, failed },
    commands,
    history,
  };
}

const givenOrder = given(decideOrder, evolveOrder, initialOrderState);

describe('when an order is new', () => {
  it('accepts it as a market order, stamped with the command time', () => {
    const o = anOrder();
    givenOrder([]).when(o.commands.AcceptOrder).then([o.events.accepted]);
  });
});

describe('when an order is accepted', () => {
  it('records the quoted price', () => {
    const o = anOrder();
    givenOrder([o.events.accepted]).when(o.commands.QuotePrice).then([o.events.quoted]);
  });

  it('fails it with the reason and the step that failed', () => {
    const o = anOrder();
    givenOrder([o.events.accepted]).when(o.commands.FailOrder).then([o.events.failed]);
  });

  it('keeps the operator detail of a failure when one is given', () => {
    const o = anOrder();
    givenOrder([o.events.accepted])
      .when({
        type: 'FailOrder',
        data: { reason: 'price_unavailable', failed_step: 'quote_price', detail: 'feed timed out after 5s' },
        now: T5,
      })
      .then([
        {
          type: 'OrderFailed',
          data: {
            order_id: o.order_id,
            reason: 'price_unavailable',
            failed_step: 'quote_price',
            detail: 'feed timed out after 5s',
            failed_at: T5,
          },
        },
      ]);
  });
});

describe('when an order is priced', () => {
  it('starts the swap with its idempotency key and position', () => {
    const o = anOrder();
    givenOrder(o.history.priced).when(o.commands.StartSwap).then([o.events.swapping]);
  });

  it('fails it when the position cannot be opened', () => {
    const o = anOrder();
    givenOrder(o.history.priced)
      .when({
        type: 'FailOrder',
        data: { reason: 'deadline_exceeded', failed_step: 'open_position' },
        now: T5,
      })
      .then([
        {
          type: 'OrderFailed',
          data: {
            order_id: o.order_id,
            reason: 'deadline_exceeded',
            failed_step: 'open_position',
            failed_at: T5,
          },
        },
      ]);
  });
});

describe('when a swap is executing', () => {
  it('records the executed swap', () => {
    const o = anOrder();
    givenOrder(o.history.swapping).when(o.commands.RecordSwap).then([o.events.swapped]);
  });

  it('fails it when the venue rejects the swap', () => {
    const o = anOrder();
    givenOrder(o.history.swapping)
      .when({ type: 'FailOrder', data: { reason: 'venue_rejected', failed_step: 'execute_swap' }, now: T5 })
      .then([
        {
          type: 'OrderFailed',
          data: {
            order_id: o.order_id,
            reason: 'venue_rejected',
            failed_step: 'execute_swap',
            failed_at: T5,
          },
        },
      ]);
  });
});

describe('when the swap has been executed', () => {
  it('completes the order with the executed amounts, price and transaction', () => {
    const o = anOrder();
    givenOrder(o.history.swapped).when(o.commands.CompleteOrder).then([o.events.completed]);
  });

  it('refuses to complete it into a position other than the one the swap was for', () => {
    const o = anOrder();
    const other = randomUUID();
    givenOrder(o.history.swapped)
      .when({ type: 'CompleteOrder', data: { position_id: other }, now: T4 })
      .thenThrows(
        IllegalTransitionError,
        new RegExp(`position ${other} is not the position ${o.position_id}`),
      );
  });

  it('refuses to fail it, because the money has moved', () => {
    const o = anOrder();
    givenOrder(o.history.swapped)
      .when(o.commands.FailOrder)
      .thenThrows(
        IllegalTransitionError,
        /Cannot fail an order that is swapped: the swap has already been executed/,
      );
  });
});

describe('when an order is already completed', () => {
  it('does nothing on a repeated completion', () => {
    const o = anOrder();
    givenOrder(o.history.completed).when(o.commands.CompleteOrder).then([]);
  });

  it('refuses to fail it', () => {
    const o = anOrder();
    givenOrder(o.history.completed)
      .when(o.commands.FailOrder)
      .thenThrows(IllegalTransitionError, /Cannot fail an order that is completed/);
  });
});

describe('when an order has already failed', () => {
  it.each(['accepted', 'priced', 'swapping'] as const)(
    'does nothing on a repeated failure (failed when %s)',
    (at) => {
      const o = anOrder();
      givenOrder([...o.history[at], o.events.failed])
        .when(o.commands.FailOrder)
        .then([]);
    },
  );

  it('does nothing on a repeated failure even with another reason', () => {
    const o = anOrder();
    givenOrder(o.history.failed)
      .when({
        type: 'FailOrder',
        data: { reason: 'deadline_exceeded', failed_step: 'execute_swap' },
        now: T5,
      })
      .then([]);
  });

  it('refuses to complete it', () => {
    const o = anOrder();
    givenOrder(o.history.failed)
      .when(o.commands.CompleteOrder)
      .thenThrows(IllegalTransitionError, /Cannot complete an order that is failed/);
  });
});

describe('when a command does not fit the order status', () => {
  /** Every (status, command) pair that is legal; all others must be refused. */
  const legal: Record<OrderStatus, readonly OrderCommand['type'][]> = {
    initial: ['AcceptOrder'],
    accepted: ['QuotePrice', 'FailOrder'],
    priced: ['StartSwap', 'FailOrder'],
    swapping: ['RecordSwap', 'FailOrder'],
    swapped: ['CompleteOrder'],
    completed: ['CompleteOrder'],
    failed: ['FailOrder'],
  };
  const commandTypes = Object.keys(ORDER_COMMAND_WORDS) as OrderCommand['type'][];
  const illegalPairs = ORDER_STATUSES.flatMap((status) =>
    commandTypes.filter((type) => !legal[status].includes(type)).map((type) => [status, type] as const),
  );

  it('covers every status and command', () => {
    expect(illegalPairs).toHaveLength(ORDER_STATUSES.length * commandTypes.length - 10);
  });

  it.each(illegalPairs)('refuses, for an order that is %s, the command %s', (status, type) => {
    const o = anOrder();
    const words = ORDER_COMMAND_WORDS[type];
    givenOrder(o.history[status])
      .when(o.commands[type])
      .thenThrows(IllegalTransitionError, new RegExp(`^Cannot ${words} an order that is ${status}: `));
  });

  it('refuses to execute a swap before a price is quoted', () => {
    const o = anOrder();
    givenOrder([o.events.accepted])
      .when(o.commands.StartSwap)
      .thenThrows(
        IllegalTransitionError,
        /start a swap for an order that is accepted: .*after a price is quoted/,
      );
  });

  it('says which aggregate, status and command were refused', () => {
    const o = anOrder();
    let error: unknown;
    try {
      decideOrder(o.commands.RecordSwap, foldOrder(o.history.priced));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(IllegalTransitionError);
    expect(error).toMatchObject({
      code: 'illegal_transition',
      aggregateType: 'order',
      status: 'priced',
      command: 'record a swap for',
    });
  });
});

describe('when an order is rebuilt from its events', () => {
  it('is initial with no events', () => {
    expect(foldOrder([])).toStrictEqual({ status: 'initial' });
  });

  it('carries everything known once completed', () => {
    const o = anOrder();
    expect(foldOrder(o.history.completed)).toStrictEqual({
      status: 'completed',
      order_id: o.order_id,
      user_id: o.user_id,
      from_amount: '1000',
      from_currency: 'USDT',
      to_currency: 'BTC',
      accepted_at: T0,
      quote: { price: '0.00001', to_amount: '0.01', source: 'simulated', quoted_at: T1 },
      swap: { idempotency_key: o.idempotency_key, position_id: o.position_id, started_at: T2 },
      execution: { tx_hash: '0xabc123', to_amount: '0.00999', executed_price: '0.00000999', executed_at: T3 },
      completed_at: T4,
    });
  });

  it('keeps how far a failed order got', () => {
    const o = anOrder();
    const state = foldOrder([...o.history.swapping, o.events.failed]);
    expect(state).toMatchObject({
      status: 'failed',
      order_id: o.order_id,
      quote: { price: '0.00001' },
      swap: { position_id: o.position_id },
      failure: { reason: 'price_unavailable', failed_step: 'quote_price', failed_at: T4 },
    });
  });

  it('carries no quote or swap for an order that failed before it was priced', () => {
    const o = anOrder();
    const state = foldOrder(o.history.failed);
    expect(state).not.toHaveProperty('quote');
    expect(state).not.toHaveProperty('swap');
  });

  it.each(ORDER_STATUSES)('reaches status %s from the events that lead there', (status) => {
    const o = anOrder();
    expect(foldOrder(o.history[status]).status).toBe(status);
  });

  it('rejects a stream whose events do not follow one another', () => {
    const o = anOrder();
    expect(() => foldOrder([o.events.accepted, o.events.swapped])).toThrow(
      /SwapExecuted cannot follow status accepted: the stream is corrupt/,
    );
    expect(() => foldOrder([...o.history.completed, o.events.failed])).toThrow(/corrupt/);
  });
});

describe('when the saga derives ids from an order id', () => {
  it('derives the swap idempotency key from the order id', () => {
    expect(idempotencyKeyFor('6d1c7a49-1a4a-4b7e-9a55-0c2f5a8e1b10')).toBe(
      'swap-6d1c7a49-1a4a-4b7e-9a55-0c2f5a8e1b10',
    );
  });
});
