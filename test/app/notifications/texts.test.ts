import { describe, expect, it } from 'vitest';
import {
  formatDecimal,
  formatPrice,
  notificationText,
  shortOrderId,
} from '../../../src/app/notifications/texts.ts';
import type { OrderCompleted, OrderFailed } from '../../../src/domain/events.ts';

const ORDER_ID = '550e8400-e29b-41d4-a716-446655440000';

const completed = (overrides: Partial<OrderCompleted['data']> = {}): OrderCompleted => ({
  type: 'OrderCompleted',
  data: {
    order_id: ORDER_ID,
    position_id: '6fa459ea-ee8a-3ca4-894e-db77e160355e',
    from_amount: '1000',
    from_currency: 'USDT',
    to_amount: '0.01',
    to_currency: 'BTC',
    executed_price: '0.00001',
    tx_hash: '0xabc',
    completed_at: '2026-11-24T12:00:00.000Z',
    ...overrides,
  },
});

const failed = (reason: OrderFailed['data']['reason']): OrderFailed => ({
  type: 'OrderFailed',
  data: { order_id: ORDER_ID, reason, failed_step: 'execute_swap', failed_at: '2026-11-24T12:00:00.000Z' },
});

describe('when an order completes', () => {
  it('says what was swapped for what, at which price, as in the issue', () => {
    expect(notificationText(completed())).toEqual({
      subject: 'Order 550e8400 completed',
      text: 'Order 550e8400 completed: 1000 USDT → 0.01 BTC at 100,000 USDT/BTC',
    });
  });

  it('shows the price the same way round for the opposite swap', () => {
    const sell = completed({
      from_amount: '0.5',
      from_currency: 'BTC',
      to_amount: '50000',
      to_currency: 'USDT',
      executed_price: '100000',
    });
    expect(notificationText(sell).text).toBe(
      'Order 550e8400 completed: 0.5 BTC → 50,000 USDT at 100,000 USDT/BTC',
    );
  });

  it('groups large amounts and keeps every decimal of them', () => {
    const big = completed({
      from_amount: '1234567.891234',
      to_amount: '12.34567891',
      executed_price: '0.0000100000',
    });
    expect(notificationText(big).text).toBe(
      'Order 550e8400 completed: 1,234,567.891234 USDT → 12.34567891 BTC at 100,000 USDT/BTC',
    );
  });
});

describe('when an order fails', () => {
  it.each([
    ['insufficient_liquidity', 'insufficient liquidity'],
    ['price_unavailable', 'no price was available'],
    ['slippage_exceeded', 'the price moved beyond the allowed slippage'],
    ['venue_rejected', 'the exchange rejected the swap'],
    ['deadline_exceeded', 'it did not complete in time'],
  ] as const)('says why in words (%s)', (reason, words) => {
    expect(notificationText(failed(reason))).toEqual({
      subject: 'Order 550e8400 failed',
      text: `Order 550e8400 failed: ${words}`,
    });
  });
});

describe('formatting', () => {
  it('takes the first block of the order id as its short form', () => {
    expect(shortOrderId(ORDER_ID)).toBe('550e8400');
  });

  it.each([
    ['0', '0'],
    ['0.01', '0.01'],
    ['999', '999'],
    ['1000', '1000'],
    ['10000', '10,000'],
    ['100000.50', '100,000.5'],
    ['1234567890.000000000000000001', '1,234,567,890.000000000000000001'],
    ['-12345.6', '-12,345.6'],
  ])('writes %s as %s', (value, shown) => {
    expect(formatDecimal(value)).toBe(shown);
  });

  it.each([
    ['0.00001', 'USDT', 'BTC', '100,000 USDT/BTC'],
    ['100000', 'BTC', 'USDT', '100,000 USDT/BTC'],
    ['1', 'USDT', 'USDC', '1 USDC/USDT'],
    ['0.999', 'USDC', 'USDT', '1.001001 USDC/USDT'],
    ['0.0000163', 'USDT', 'BTC', '61,349.693 USDT/BTC'],
    ['20.5', 'BTC', 'ETH', '20.5 ETH/BTC'],
  ])('shows price %s of %s → %s as %s', (price, from, to, shown) => {
    expect(formatPrice(price, from, to)).toBe(shown);
  });
});
