import { randomUUID } from 'node:crypto';
import type { EventMessage } from '../../src/app/messages.ts';
import type { DomainEvent, DomainEventType } from '../../src/domain/events.ts';
import { POSITION_EVENT_TYPES } from '../../src/domain/events.ts';
import { positionIdFor } from '../../src/domain/ids.ts';
import type { NewEvent } from '../../src/app/ports/eventStore.ts';

const AT = '2026-11-24T12:00:00.000Z';

/** Valid data of each catalogue event for the order `orderId` (what messageSchema accepts). */
function dataOf(type: DomainEventType, orderId: string): DomainEvent['data'] {
  const position_id = positionIdFor(orderId);
  const terms = { from_currency: 'USDT', to_currency: 'BTC' };
  switch (type) {
    case 'OrderAccepted':
      return {
        order_id: orderId,
        user_id: `user-${orderId}`,
        from_amount: '1000',
        ...terms,
        order_type: 'market',
        accepted_at: AT,
      };
    case 'PriceQuoted':
      return { price: '0.00001', to_amount: '0.01', quoted_at: AT, source: 'test' };
    case 'SwapExecuting':
      return { idempotency_key: `swap-${orderId}`, position_id, started_at: AT };
    case 'SwapExecuted':
      return { tx_hash: `0x${orderId}`, to_amount: '0.01', executed_price: '0.00001', executed_at: AT };
    case 'OrderCompleted':
      return {
        order_id: orderId,
        position_id,
        from_amount: '1000',
        to_amount: '0.01',
        ...terms,
        executed_price: '0.00001',
        tx_hash: `0x${orderId}`,
        completed_at: AT,
      };
    case 'OrderFailed':
      return {
        order_id: orderId,
        reason: 'insufficient_liquidity',
        failed_step: 'quote_price',
        failed_at: AT,
      };
    case 'PositionCreated':
      return { position_id, user_id: `user-${orderId}`, order_id: orderId, ...terms, created_at: AT };
    case 'PositionUpdated':
      return {
        position_id,
        order_id: orderId,
        from_amount: '1000',
        to_amount: '0.01',
        executed_price: '0.00001',
        total_from_amount: '1000',
        total_to_amount: '0.01',
        updated_at: AT,
      };
    case 'PositionClosed':
      return { position_id, reason: 'order failed', closed_at: AT };
  }
}

/** A catalogue event with valid data, for tests whose consumers validate what they receive. */
export function aCatalogueEvent(orderId: string, type: DomainEventType = 'OrderAccepted'): NewEvent {
  return {
    event_id: randomUUID(),
    event_type: type,
    event_data: dataOf(type, orderId),
    metadata: { correlation_id: orderId, causation_id: null, occurred_at: AT, schema_version: 1 },
  };
}

/** A valid message of `type` on a fresh order (or the order given), as a bus delivers it. */
export function aMessage(type: DomainEventType, orderId: string = randomUUID()): EventMessage {
  const position = (POSITION_EVENT_TYPES as readonly string[]).includes(type);
  const event = aCatalogueEvent(orderId, type);
  return {
    ...event,
    event_data: { ...event.event_data },
    aggregate_id: position ? positionIdFor(orderId) : orderId,
    aggregate_type: position ? 'position' : 'order',
    version: 1,
  };
}
