import { z } from 'zod';

/**
 * The JSON shapes of the price service and trade worker HTTP APIs (documented in
 * httpPriceService.ts and httpTradeWorker.ts), shared by the adapters and the simulated server
 * so the two cannot drift apart.
 */

const DECIMAL = /^\d+(\.\d+)?$/;
/** Signed, so that a zero or negative price reaches the saga, whose job is to refuse it. */
const SIGNED_DECIMAL = /^-?\d+(\.\d+)?$/;
const CURRENCY = /^[A-Z][A-Z0-9]{1,9}$/;
/** Visible ASCII, as in an HTTP header. */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

const decimalString = z.string().regex(DECIMAL, 'must be a non-negative decimal string such as "0.25"');

export const priceQuoteSchema = z.object({
  price: z.string().regex(SIGNED_DECIMAL, 'must be a decimal string such as "0.00001"'),
  quoted_at: z.iso.datetime({ offset: true }),
  source: z.string().min(1),
});

export const swapRequestSchema = z.object({
  idempotency_key: z.string().regex(IDEMPOTENCY_KEY, 'must be 1 to 255 visible ASCII characters'),
  from_currency: z.string().regex(CURRENCY, 'must be an upper-case ticker'),
  to_currency: z.string().regex(CURRENCY, 'must be an upper-case ticker'),
  from_amount: decimalString,
  quoted_price: decimalString,
  min_to_amount: decimalString,
  execute_before: z.iso.datetime({ offset: true }),
});

export const executedSchema = z.object({
  status: z.literal('executed'),
  idempotency_key: z.string(),
  tx_hash: z.string().min(1),
  to_amount: decimalString,
  executed_price: decimalString,
  executed_at: z.iso.datetime({ offset: true }),
});

/** `idempotency_key` is optional on the wire: the caller knows which key it asked about. */
export const rejectedSchema = z.object({
  status: z.literal('rejected'),
  idempotency_key: z.string().optional(),
  reason: z.enum(['insufficient_liquidity', 'slippage_exceeded', 'venue_rejected', 'expired']),
  detail: z.string(),
});

export const voidedSchema = z.object({
  status: z.literal('voided'),
  idempotency_key: z.string().optional(),
  voided_at: z.iso.datetime({ offset: true }),
});

export const outcomeSchema = z.discriminatedUnion('status', [executedSchema, rejectedSchema, voidedSchema]);

/** `{error, detail}`: the body of every non-2xx answer of the simulated server. */
export const errorBodySchema = z.object({ error: z.string().optional(), detail: z.string().optional() });

/** One line naming each field that failed, for error messages. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(body)'} ${issue.message}`).join('; ');
}
