import { randomUUID } from 'node:crypto';
import { newEvent } from '../../src/app/envelopes.ts';
import type { EnvelopeOf, EventDataMap, NewEventOf } from '../../src/app/envelopes.ts';
import type { NewEvent } from '../../src/app/ports/eventStore.ts';
import type { DomainEventType } from '../../src/domain/events.ts';
import { POSITION_EVENT_TYPES } from '../../src/domain/events.ts';
import { positionIdFor } from '../../src/domain/ids.ts';

const AT = '2026-11-24T12:00:00.000Z';
const TERMS = { from_currency: 'USDT', to_currency: 'BTC' };

/** Valid data of each catalogue event for the order `orderId` (what messageSchema accepts). */
const DATA: { readonly [T in DomainEventType]: (orderId: string) => EventDataMap[T] } = {
  OrderAccepted: (orderId) => ({
    order_id: orderId,
    user_id: `user-${orderId}`,
    from_amount: '1000',
    ...TERMS,
    order_type: 'market',
    accepted_at: AT,
  }),
  PriceQuoted: () => ({ price: '0.00001', to_amount: '0.01', quoted_at: AT, source: 'test' }),
  SwapExecuting: (orderId) => ({
    idempotency_key: `swap-${orderId}`,
    position_id: positionIdFor(orderId),
    started_at: AT,
  }),
  SwapExecuted: (orderId) => ({
    tx_hash: `0x${orderId}`,
    to_amount: '0.01',
    executed_price: '0.00001',
    executed_at: AT,
  }),
  OrderCompleted: (orderId) => ({
    order_id: orderId,
    position_id: positionIdFor(orderId),
    from_amount: '1000',
    to_amount: '0.01',
    ...TERMS,
    executed_price: '0.00001',
    tx_hash: `0x${orderId}`,
    completed_at: AT,
  }),
  OrderFailed: (orderId) => ({
    order_id: orderId,
    reason: 'insufficient_liquidity',
    failed_step: 'quote_price',
    failed_at: AT,
  }),
  PositionCreated: (orderId) => ({
    position_id: positionIdFor(orderId),
    user_id: `user-${orderId}`,
    order_id: orderId,
    ...TERMS,
    created_at: AT,
  }),
  PositionUpdated: (orderId) => ({
    position_id: positionIdFor(orderId),
    order_id: orderId,
    from_amount: '1000',
    to_amount: '0.01',
    executed_price: '0.00001',
    total_from_amount: '1000',
    total_to_amount: '0.01',
    updated_at: AT,
  }),
  PositionClosed: (orderId) => ({
    position_id: positionIdFor(orderId),
    reason: 'order failed',
    closed_at: AT,
  }),
};

/** A catalogue event of `type` with valid data for the order `orderId`. */
function catalogueEvent<T extends DomainEventType>(orderId: string, type: T): NewEventOf<T> {
  return newEvent(
    { type, data: DATA[type](orderId) },
    {
      event_id: randomUUID(),
      metadata: { correlation_id: orderId, causation_id: null, occurred_at: AT, schema_version: 1 },
    },
  );
}

/** A catalogue event with valid data, for tests whose consumers validate what they receive. */
export function aCatalogueEvent(orderId: string, type: DomainEventType = 'OrderAccepted'): NewEvent {
  return catalogueEvent(orderId, type);
}

/** A valid message of `type` on a fresh order (or the order given), as a bus delivers it. */
export function aMessage<T extends DomainEventType>(type: T, orderId: string = randomUUID()): EnvelopeOf<T> {
  const position = (POSITION_EVENT_TYPES as readonly string[]).includes(type);
  const envelope: EnvelopeOf<T> = {
    ...catalogueEvent(orderId, type),
    aggregate_id: position ? positionIdFor(orderId) : orderId,
    aggregate_type: position ? 'position' : 'order',
    version: 1,
  };
  return envelope;
}
