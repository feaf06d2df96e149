import { Decimal as DecimalJs } from 'decimal.js';

/**
 * Decimal arithmetic for money. A dedicated clone so that no other user of decimal.js can change
 * our precision or rounding. 80 significant digits covers 18-decimal currencies with room for
 * amounts far beyond any configured maximum; plain notation keeps strings exponent-free.
 */
export const Decimal = DecimalJs.clone({
  precision: 80,
  rounding: DecimalJs.ROUND_DOWN,
  toExpNeg: -100,
  toExpPos: 100,
});
export type Decimal = InstanceType<typeof Decimal>;

export interface Currency {
  /** Upper-case ticker, e.g. `USDT`. */
  readonly code: string;
  /** Decimal places an amount of this currency may carry. */
  readonly precision: number;
  /** Largest amount accepted in an order, as a decimal string. */
  readonly maxAmount: string;
}

export const DEFAULT_MAX_AMOUNT = '1000000000';

export const DEFAULT_CURRENCIES: readonly Currency[] = [
  { code: 'USDT', precision: 6, maxAmount: DEFAULT_MAX_AMOUNT },
  { code: 'USDC', precision: 6, maxAmount: DEFAULT_MAX_AMOUNT },
  { code: 'BTC', precision: 8, maxAmount: '100000' },
  { code: 'ETH', precision: 18, maxAmount: '10000000' },
];

export interface Currencies {
  get(code: string): Currency | undefined;
  readonly codes: readonly string[];
}

export function currencies(list: readonly Currency[] = DEFAULT_CURRENCIES): Currencies {
  const byCode = new Map(list.map((c) => [c.code, c]));
  return { get: (code) => byCode.get(code), codes: [...byCode.keys()] };
}

const CURRENCY_CODE = /^[A-Z][A-Z0-9]{1,9}$/;

/**
 * Parses a list like `USDT:6,BTC:8:100000` (code:precision[:maxAmount]). Throws with the
 * offending entry named, since this runs once at start-up from configuration.
 */
export function parseCurrencyList(spec: string, defaultMax: string = DEFAULT_MAX_AMOUNT): Currency[] {
  return spec
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const [code = '', precisionText = '', maxAmount = defaultMax] = entry.split(':');
      const precision = Number(precisionText);
      if (!CURRENCY_CODE.test(code))
        throw new Error(`Currency "${entry}": code must be 2-10 upper-case letters/digits`);
      // Number('') is 0, so a missing precision must be caught on the text, not the number.
      if (!/^\d+$/.test(precisionText) || precision > 30) {
        throw new Error(`Currency "${entry}": precision must be an integer from 0 to 30`);
      }
      if (!PLAIN_DECIMAL.test(maxAmount) || new Decimal(maxAmount).lte(0)) {
        throw new Error(`Currency "${entry}": maximum amount must be a positive decimal`);
      }
      return { code, precision, maxAmount };
    });
}

const PLAIN_DECIMAL = /^\d+(\.\d+)?$/;
/** The text of a number that parseAmount reads (sign and exponent allowed; it then checks the value). */
export const NUMBER_TEXT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

export type AmountProblem = 'not_a_number' | 'not_positive' | 'too_precise' | 'too_large';

export type AmountResult =
  | { readonly ok: true; readonly value: Decimal }
  | { readonly ok: false; readonly problem: AmountProblem; readonly message: string };

/**
 * Validates an amount given as text (a JSON number's source text or a string) for a currency.
 * Rejects rather than rounds: a client that sends more decimals than the currency has made a mistake.
 */
export function parseAmount(text: string, currency: Currency): AmountResult {
  if (!NUMBER_TEXT.test(text)) {
    return { ok: false, problem: 'not_a_number', message: 'must be a decimal number, e.g. "1000" or "0.25"' };
  }
  const value = new Decimal(text);
  if (value.lte(0)) return { ok: false, problem: 'not_positive', message: 'must be greater than zero' };
  if (value.decimalPlaces() > currency.precision) {
    return {
      ok: false,
      problem: 'too_precise',
      message: `has ${value.decimalPlaces()} decimal places; ${currency.code} allows at most ${currency.precision}`,
    };
  }
  if (value.gt(currency.maxAmount)) {
    return {
      ok: false,
      problem: 'too_large',
      message: `must not exceed ${currency.maxAmount} ${currency.code}`,
    };
  }
  return { ok: true, value };
}

/** Canonical string form of an amount: plain notation, no trailing zeros. */
export function formatAmount(value: Decimal): string {
  return value.toFixed();
}

/**
 * Converts an amount at a price (target units per source unit), rounding DOWN to the target
 * currency's precision so the user is never promised more than the venue can deliver.
 */
export function convert(amount: Decimal, price: Decimal, target: Currency): Decimal {
  return amount.times(price).toDecimalPlaces(target.precision, Decimal.ROUND_DOWN);
}

export function decimal(text: string): Decimal {
  return new Decimal(text);
}

/** Sums decimal strings exactly. */
export function sum(a: string, b: string): string {
  return formatAmount(new Decimal(a).plus(b));
}
