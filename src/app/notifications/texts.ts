import type { FailureReason, OrderCompleted, OrderFailed } from '../../domain/events.ts';
import { Decimal } from '../../domain/money.ts';

/** What a notification says: a subject for email, the text for every channel. */
export interface NotificationText {
  readonly subject: string;
  readonly text: string;
}

/** A terminal event of an order, as the notifier receives it. */
export type TerminalEvent = OrderCompleted | OrderFailed;

/** Reasons in the words a trader would use; a record, so a new reason fails to compile here. */
const REASON_WORDS: Record<FailureReason, string> = {
  insufficient_liquidity: 'insufficient liquidity',
  price_unavailable: 'no price was available',
  slippage_exceeded: 'the price moved beyond the allowed slippage',
  venue_rejected: 'the exchange rejected the swap',
  deadline_exceeded: 'it did not complete in time',
  cancelled: 'it was cancelled by an operator',
};

/** Significant digits of a shown price: exact enough to check, short enough to read. */
const PRICE_DIGITS = 8;

/** The first block of the order id: enough to find the order, short enough to read aloud. */
export function shortOrderId(orderId: string): string {
  return orderId.slice(0, 8);
}

/**
 * A decimal with thousands separators in its integer part, exactly as given otherwise (no
 * rounding, no trailing zeros). Four-digit integers stay ungrouped ("1000", "100,000"), as in
 * the issue's example and SI style: a lone comma in "1,000" reads as a decimal point to many.
 */
export function formatDecimal(value: string | Decimal): string {
  const plain = new Decimal(value).toFixed();
  const [integer = '', fraction] = plain.replace(/^-/, '').split('.');
  const grouped = integer.length > 4 ? integer.replace(/\B(?=(\d{3})+$)/g, ',') : integer;
  const sign = plain.startsWith('-') ? '-' : '';
  return `${sign}${grouped}${fraction === undefined ? '' : `.${fraction}`}`;
}

/**
 * The price in the direction that reads naturally: the quote of the pair that is at least 1.
 * `price` is units of `to` per one unit of `from` (as in the events), so a USDT → BTC swap at
 * 0.00001 reads "100,000 USDT/BTC" (USDT per BTC), and BTC → USDT at 100000 reads the same.
 */
export function formatPrice(price: string, from: string, to: string): string {
  const value = new Decimal(price);
  if (value.isZero()) return `0 ${to}/${from}`;
  const [shown, base, quote] = value.gte(1) ? [value, from, to] : [new Decimal(1).div(value), to, from];
  const rounded = shown.toSignificantDigits(PRICE_DIGITS, Decimal.ROUND_HALF_UP);
  return `${formatDecimal(rounded)} ${quote}/${base}`;
}

function completedText(data: OrderCompleted['data']): NotificationText {
  const order = `Order ${shortOrderId(data.order_id)}`;
  const swap = `${formatDecimal(data.from_amount)} ${data.from_currency} → ${formatDecimal(data.to_amount)} ${data.to_currency}`;
  const price = formatPrice(data.executed_price, data.from_currency, data.to_currency);
  return { subject: `${order} completed`, text: `${order} completed: ${swap} at ${price}` };
}

function failedText(data: OrderFailed['data']): NotificationText {
  const order = `Order ${shortOrderId(data.order_id)}`;
  return { subject: `${order} failed`, text: `${order} failed: ${REASON_WORDS[data.reason]}` };
}

/**
 * What to tell the user about an order's end, e.g.
 * "Order 550e8400 completed: 1000 USDT → 0.01 BTC at 100,000 USDT/BTC" or
 * "Order 550e8400 failed: insufficient liquidity". Pure: the same event always reads the same,
 * so a resent notification says exactly what the first one said.
 */
export function notificationText(event: TerminalEvent): NotificationText {
  return event.type === 'OrderCompleted' ? completedText(event.data) : failedText(event.data);
}
