import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { IllegalTransitionError } from '../../src/domain/errors.ts';
import type {
  PositionClosed,
  PositionCreated,
  PositionEvent,
  PositionUpdated,
} from '../../src/domain/events.ts';
import { uuidV5 } from '../../src/domain/ids.ts';
import {
  decidePosition,
  evolvePosition,
  foldPosition,
  initialPositionState,
  POSITION_COMMAND_WORDS,
  POSITION_STATUSES,
  positionIdFor,
} from '../../src/domain/position.ts';
import type { AddOrder, PositionCommand, PositionStatus } from '../../src/domain/position.ts';
import { given } from '../helpers/decider.ts';

const T0 = '2026-11-24T12:00:00.000Z';
const T1 = '2026-11-24T12:00:01.000Z';
const T2 = '2026-11-24T12:00:02.000Z';
const T3 = '2026-11-24T12:00:03.000Z';

const givenPosition = given(decidePosition, evolvePosition, initialPositionState);

/** A fresh position with its own ids, and the events and commands of its life. */
function aPosition(from_currency = 'USDT', to_currency = 'BTC') {
  const order_id = randomUUID();
  const user_id = randomUUID();
  const position_id = positionIdFor(order_id);

  const created: PositionCreated = {
    type: 'PositionCreated',
    data: { position_id, user_id, order_id, from_currency, to_currency, created_at: T0 },
  };
  const addOrder = (id: string, from_amount: string, to_amount: string, now = T1): AddOrder => ({
    type: 'AddOrder',
    data: { order_id: id, from_amount, to_amount, executed_price: '0.00001' },
    now,
  });
  const updated = (
    id: string,
    from_amount: string,
    to_amount: string,
    total_from_amount: string,
    total_to_amount: string,
    updated_at = T1,
  ): PositionUpdated => ({
    type: 'PositionUpdated',
    data: {
      position_id,
      order_id: id,
      from_amount,
      to_amount,
      executed_price: '0.00001',
      total_from_amount,
      total_to_amount,
      updated_at,
    },
  });
  const closed: PositionClosed = {
    type: 'PositionClosed',
    data: { position_id, reason: 'order failed: venue_rejected', closed_at: T2 },
  };

  const commands = {
    CreatePosition: {
      type: 'CreatePosition',
      data: { position_id, user_id, order_id, from_currency, to_currency },
      now: T0,
    },
    AddOrder: addOrder(order_id, '1000', '0.01'),
    ClosePosition: { type: 'ClosePosition', data: { reason: 'order failed: venue_rejected' }, now: T2 },
  } as const satisfies { [K in PositionCommand['type']]: Extract<PositionCommand, { type: K }> };

  const history: Record<PositionStatus, readonly PositionEvent[]> = {
    initial: [],
    open: [created],
    closed: [created, closed],
  };

  return {
    order_id,
    user_id,
    position_id,
    events: { created, closed },
    addOrder,
    updated,
    commands,
    history,
  };
}

describe('when a position does not exist yet', () => {
  it('creates it for the order that opens it', () => {
    const p = aPosition();
    givenPosition([]).when(p.commands.CreatePosition).then([p.events.created]);
  });
});

describe('when a position is open', () => {
  it('adds a completed order with running totals', () => {
    const p = aPosition();
    givenPosition([p.events.created])
      .when(p.addOrder(p.order_id, '1000', '0.01'))
      .then([p.updated(p.order_id, '1000', '0.01', '1000', '0.01')]);
  });

  it('adds to the totals an order that was added before', () => {
    const p = aPosition();
    const second = randomUUID();
    givenPosition([p.events.created, p.updated(p.order_id, '1000', '0.01', '1000', '0.01')])
      .when(p.addOrder(second, '250.5', '0.0025', T2))
      .then([p.updated(second, '250.5', '0.0025', '1250.5', '0.0125', T2)]);
  });

  it('sums amounts exactly where floating point would not (0.1 + 0.2 BTC)', () => {
    const p = aPosition('USDT', 'BTC');
    const second = randomUUID();
    expect(0.1 + 0.2).not.toBe(0.3);
    givenPosition([p.events.created, p.updated(p.order_id, '10000.1', '0.1', '10000.1', '0.1')])
      .when(p.addOrder(second, '20000.2', '0.2', T2))
      .then([p.updated(second, '20000.2', '0.2', '30000.3', '0.3', T2)]);
  });

  it('sums 18-decimal amounts without losing the last wei', () => {
    const p = aPosition('USDT', 'ETH');
    const second = randomUUID();
    givenPosition([
      p.events.created,
      p.updated(p.order_id, '1', '0.000000000000000001', '1', '0.000000000000000001'),
    ])
      .when(p.addOrder(second, '3999.999999', '1.999999999999999999', T2))
      .then([p.updated(second, '3999.999999', '1.999999999999999999', '4000.999999', '2', T2)]);
  });

  it('does nothing when the same order is added again', () => {
    const p = aPosition();
    givenPosition([p.events.created, p.updated(p.order_id, '1000', '0.01', '1000', '0.01')])
      .when(p.addOrder(p.order_id, '1000', '0.01', T3))
      .then([]);
  });

  it('closes it with the reason', () => {
    const p = aPosition();
    givenPosition(p.history.open).when(p.commands.ClosePosition).then([p.events.closed]);
  });
});

describe('when a position is closed', () => {
  it('does nothing when closed again', () => {
    const p = aPosition();
    givenPosition(p.history.closed)
      .when({ type: 'ClosePosition', data: { reason: 'another reason' }, now: T3 })
      .then([]);
  });

  it('refuses to add an order to it', () => {
    const p = aPosition();
    givenPosition(p.history.closed)
      .when(p.addOrder(randomUUID(), '1', '0.00001'))
      .thenThrows(IllegalTransitionError, /^Cannot add an order to a position that is closed: /);
  });
});

describe('when a command does not fit the position status', () => {
  const legal: Record<PositionStatus, readonly PositionCommand['type'][]> = {
    initial: ['CreatePosition'],
    open: ['AddOrder', 'ClosePosition'],
    closed: ['ClosePosition'],
  };
  const commandTypes = Object.keys(POSITION_COMMAND_WORDS) as PositionCommand['type'][];
  const illegalPairs = POSITION_STATUSES.flatMap((status) =>
    commandTypes.filter((type) => !legal[status].includes(type)).map((type) => [status, type] as const),
  );

  it('covers every status and command', () => {
    expect(illegalPairs).toStrictEqual([
      ['initial', 'AddOrder'],
      ['initial', 'ClosePosition'],
      ['open', 'CreatePosition'],
      ['closed', 'CreatePosition'],
      ['closed', 'AddOrder'],
    ]);
  });

  it.each(illegalPairs)('refuses, for a position that is %s, the command %s', (status, type) => {
    const p = aPosition();
    givenPosition(p.history[status])
      .when(p.commands[type])
      .thenThrows(
        IllegalTransitionError,
        new RegExp(`^Cannot ${POSITION_COMMAND_WORDS[type]} a position that is ${status}: `),
      );
  });
});

describe('when a position is rebuilt from its events', () => {
  it('starts an open position with zero totals and no orders', () => {
    const p = aPosition();
    expect(foldPosition(p.history.open)).toStrictEqual({
      status: 'open',
      position_id: p.position_id,
      user_id: p.user_id,
      order_id: p.order_id,
      from_currency: 'USDT',
      to_currency: 'BTC',
      total_from_amount: '0',
      total_to_amount: '0',
      order_ids: [],
      created_at: T0,
    });
  });

  it('carries the recorded totals and the orders applied', () => {
    const p = aPosition();
    const second = randomUUID();
    const state = foldPosition([
      p.events.created,
      p.updated(p.order_id, '0.1', '0.1', '0.1', '0.1'),
      p.updated(second, '0.2', '0.2', '0.3', '0.3', T2),
      p.events.closed,
    ]);
    expect(state).toMatchObject({
      status: 'closed',
      total_from_amount: '0.3',
      total_to_amount: '0.3',
      order_ids: [p.order_id, second],
      reason: 'order failed: venue_rejected',
      closed_at: T2,
    });
  });

  it('rejects a stream whose events do not follow one another', () => {
    const p = aPosition();
    expect(() => foldPosition([p.events.closed])).toThrow(
      /PositionClosed cannot follow status initial: the stream is corrupt/,
    );
    expect(() => foldPosition([...p.history.closed, p.updated(p.order_id, '1', '1', '1', '1')])).toThrow(
      /corrupt/,
    );
  });
});

describe('when a position id is derived from an order id', () => {
  it('is the same for every run of the saga', () => {
    const orderId = randomUUID();
    expect(positionIdFor(orderId)).toBe(positionIdFor(orderId));
  });

  it('differs between orders', () => {
    expect(positionIdFor(randomUUID())).not.toBe(positionIdFor(randomUUID()));
  });

  it('is a version-5 UUID with the RFC variant', () => {
    expect(positionIdFor(randomUUID())).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  it('matches the published UUID v5 test vector', () => {
    // RFC 9562 appendix: the DNS namespace and "www.example.com".
    expect(uuidV5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe(
      '2ed6657d-e927-568b-95e1-2665a8aea6a2',
    );
  });

  it('stays fixed across releases for a known order id', () => {
    expect(positionIdFor('6d1c7a49-1a4a-4b7e-9a55-0c2f5a8e1b10')).toBe(
      uuidV5('6d1c7a49-1a4a-4b7e-9a55-0c2f5a8e1b10', 'fc2bb1e3-9a2d-4252-acfd-08da6b571c65'),
    );
  });

  it('refuses a namespace that is not a UUID', () => {
    expect(() => uuidV5('x', 'not-a-uuid')).toThrow(/not a UUID/);
  });
});
