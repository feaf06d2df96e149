import { isLosslessNumber } from 'lossless-json';
import { z } from 'zod';
import type { PlaceOrder } from '../app/orders.ts';
import { ValidationError } from '../domain/errors.ts';
import { formatAmount, NUMBER_TEXT, parseAmount } from '../domain/money.ts';
import type { Currencies, Currency } from '../domain/money.ts';
import { issuesToProblems, jsonKind, storable, storableText, userIdText } from './fields.ts';

/**
 * from_amount arrives as a JSON number (its exact source text, kept by lossless-json) or as a
 * string; both become the text that parseAmount checks. Never through a float.
 */
const amountText = storable(
  z
    .custom<string>((value) => typeof value === 'string' || isLosslessNumber(value), {
      error: (issue) =>
        issue.input === undefined
          ? 'is required'
          : `must be a number or a decimal string, got ${jsonKind(issue.input)}`,
    })
    // What the OpenAPI document shows for it (a custom check has no JSON Schema of its own).
    .meta({
      anyOf: [
        { type: 'number', exclusiveMinimum: 0 },
        { type: 'string', pattern: NUMBER_TEXT.source },
      ],
    })
    .transform((value) => (typeof value === 'string' ? value : String(value))),
);

/** The limits of an amount in each currency, in words, for the OpenAPI document. */
function amountLimits(currencies: Currencies): string {
  return currencies.codes
    .flatMap((code) => {
      const currency = currencies.get(code);
      return currency ? [`${code}: ${currency.precision} places, at most ${currency.maxAmount}`] : [];
    })
    .join('; ');
}

const schemas = new WeakMap<Currencies, ReturnType<typeof buildOrderRequestSchema>>();

function buildOrderRequestSchema(currencies: Currencies) {
  const supported = currencies.codes.join(', ');
  const currency = storableText('a currency code')
    .refine((code) => currencies.get(code) !== undefined, {
      error: (issue) => `is not a supported currency: "${String(issue.input)}" (supported: ${supported})`,
    })
    .meta({ enum: [...currencies.codes] });
  return z
    .strictObject(
      {
        user_id: userIdText().meta({
          description: 'Whose order it is; with API keys configured, the user of the key (admins: any)',
        }),
        from_amount: amountText.meta({
          description:
            'How much of from_currency to swap: greater than zero, as a JSON number (its exact text is ' +
            'kept, never rounded through a float) or a decimal string; no more decimal places than the ' +
            `currency has, and at most its maximum (${amountLimits(currencies)})`,
          examples: [1000, '0.25'],
        }),
        from_currency: currency.meta({ description: 'The currency to sell' }),
        to_currency: currency.meta({ description: 'The currency to buy; must differ from from_currency' }),
        order_type: storableText()
          .refine((type) => type === 'market', {
            error: (issue) => `"${String(issue.input)}" orders are not supported; only "market" orders are`,
          })
          .meta({ enum: ['market'] }),
      },
      {
        error: (issue) =>
          issue.code === 'unrecognized_keys' ? 'has fields this API does not know' : 'must be a JSON object',
      },
    )
    .meta({
      description: 'A market order: swap from_amount of from_currency into to_currency at the market price',
    });
}

/**
 * The body of `POST /orders` for these currencies: what validateOrderRequest checks and what the
 * OpenAPI document shows. Built once per currency list.
 */
export function orderRequestSchema(currencies: Currencies) {
  let schema = schemas.get(currencies);
  if (!schema) {
    schema = buildOrderRequestSchema(currencies);
    schemas.set(currencies, schema);
  }
  return schema;
}

/**
 * Validates a parsed order body. Every failing field is reported at once, cross-field rules
 * included whenever the fields they need are themselves valid.
 * @throws ValidationError listing each field and why.
 */
export function validateOrderRequest(body: unknown, currencies: Currencies): PlaceOrder {
  const parsed = orderRequestSchema(currencies).safeParse(body);
  const problems = parsed.success ? [] : issuesToProblems(parsed.error.issues, 'is not a field of an order');
  const failed = new Set(problems.map((p) => p.field));

  const raw = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const from = typeof raw.from_currency === 'string' ? currencies.get(raw.from_currency) : undefined;
  const to = typeof raw.to_currency === 'string' ? currencies.get(raw.to_currency) : undefined;
  let amount: string | undefined;
  if (!failed.has('from_amount')) {
    const text = amountText.safeParse(raw.from_amount);
    if (text.success) {
      // Without a valid currency, still check what can be checked: that it is a positive number.
      const checkedAs: Currency = from ?? {
        code: '',
        precision: Number.MAX_SAFE_INTEGER,
        maxAmount: '1e100',
      };
      const result = parseAmount(text.data, checkedAs);
      if (result.ok) amount = formatAmount(result.value);
      else problems.push({ field: 'from_amount', message: result.message });
    }
  }
  if (from && to && from.code === to.code) {
    problems.push({
      field: 'to_currency',
      message: `must differ from from_currency (both are ${from.code})`,
    });
  }

  if (problems.length > 0 || !parsed.success || amount === undefined) throw new ValidationError(problems);
  return { ...parsed.data, from_amount: amount, order_type: 'market' };
}
