import { describe, expect, it } from 'vitest';
import {
  convert,
  currencies,
  decimal,
  DEFAULT_MAX_AMOUNT,
  formatAmount,
  parseAmount,
  parseCurrencyList,
  sum,
} from '../../src/domain/money.ts';
import type { AmountResult, Currency } from '../../src/domain/money.ts';

const book = currencies();
function currency(code: string): Currency {
  const found = book.get(code);
  if (!found) throw new Error(`No currency ${code} in the default list`);
  return found;
}
const USDT = currency('USDT');
const BTC = currency('BTC');
const ETH = currency('ETH');

function problemOf(result: AmountResult): string {
  return result.ok ? 'ok' : result.problem;
}

describe('when an amount is parsed', () => {
  it.each(['1000', '0.25', '.5', '5.', '+7', '1e3', '0.123456', '1000000000'])(
    'accepts %s for USDT',
    (text) => {
      const result = parseAmount(text, USDT);
      expect(result.ok).toBe(true);
    },
  );

  it('keeps the exact value, not a float', () => {
    const result = parseAmount('0.000000000000000001', ETH);
    expect(result.ok && formatAmount(result.value)).toBe('0.000000000000000001');
  });

  it('reads exponent notation as the plain amount', () => {
    const result = parseAmount('1e3', USDT);
    expect(result.ok && formatAmount(result.value)).toBe('1000');
  });

  it('does not count trailing zeros as precision', () => {
    expect(problemOf(parseAmount('0.1234560', USDT))).toBe('ok');
  });

  it.each(['abc', 'NaN', 'Infinity', '-Infinity', '', ' ', '1,5', '0x10', '1 000', '1.2.3', '--1'])(
    'rejects %j as not a number',
    (text) => {
      const result = parseAmount(text, USDT);
      expect(result).toStrictEqual({
        ok: false,
        problem: 'not_a_number',
        message: 'must be a decimal number, e.g. "1000" or "0.25"',
      });
    },
  );

  it.each(['0', '-1', '-0.000001', '0.000', '-0'])('rejects %s as not positive', (text) => {
    expect(parseAmount(text, USDT)).toStrictEqual({
      ok: false,
      problem: 'not_positive',
      message: 'must be greater than zero',
    });
  });

  it('rejects more decimals than the currency has, naming both', () => {
    expect(parseAmount('0.1234567', USDT)).toStrictEqual({
      ok: false,
      problem: 'too_precise',
      message: 'has 7 decimal places; USDT allows at most 6',
    });
  });

  it('rejects too many decimals written in exponent notation', () => {
    expect(problemOf(parseAmount('1e-9', BTC))).toBe('too_precise');
  });

  it('allows all 18 decimals of ETH and no more', () => {
    expect(problemOf(parseAmount('1.000000000000000001', ETH))).toBe('ok');
    expect(problemOf(parseAmount('1.0000000000000000001', ETH))).toBe('too_precise');
  });

  it('rejects an amount above the currency maximum', () => {
    expect(parseAmount('1000000000.000001', USDT)).toStrictEqual({
      ok: false,
      problem: 'too_large',
      message: 'must not exceed 1000000000 USDT',
    });
    expect(problemOf(parseAmount('100000.00000001', BTC))).toBe('too_large');
    expect(problemOf(parseAmount('1e300', USDT))).toBe('too_large');
  });
});

describe('when an amount is converted at a price', () => {
  it('gives 0.01 BTC for 1000 USDT at 0.00001 BTC per USDT', () => {
    expect(formatAmount(convert(decimal('1000'), decimal('0.00001'), BTC))).toBe('0.01');
  });

  it('rounds down to the target precision, never up', () => {
    // 123.456789 × 0.0000163 = 0.0020123456607; rounding half-up would promise 0.00201235.
    expect(formatAmount(convert(decimal('123.456789'), decimal('0.0000163'), BTC))).toBe('0.00201234');
  });

  it('rounds down even when the dropped digits are all nines', () => {
    expect(formatAmount(convert(decimal('1'), decimal('0.999999999'), BTC))).toBe('0.99999999');
  });

  it('keeps all 18 decimals of ETH', () => {
    expect(formatAmount(convert(decimal('0.3'), decimal('0.000333333333333333333'), ETH))).toBe(
      '0.000099999999999999',
    );
  });

  it('gives zero when the amount is below the smallest unit of the target', () => {
    expect(formatAmount(convert(decimal('0.000001'), decimal('0.00001'), BTC))).toBe('0');
  });
});

describe('when amounts are summed or formatted', () => {
  it('sums exactly where floating point would not', () => {
    expect(sum('0.1', '0.2')).toBe('0.3');
    expect(sum('0.000000000000000001', '1.999999999999999999')).toBe('2');
  });

  it('formats without exponents or trailing zeros', () => {
    expect(formatAmount(decimal('1e-18'))).toBe('0.000000000000000001');
    expect(formatAmount(decimal('1e21'))).toBe('1000000000000000000000');
    expect(formatAmount(decimal('1.500'))).toBe('1.5');
  });
});

describe('when a currency list is configured', () => {
  it('reads code, precision and an optional maximum', () => {
    expect(parseCurrencyList('USDT:6,BTC:8:100000')).toStrictEqual([
      { code: 'USDT', precision: 6, maxAmount: DEFAULT_MAX_AMOUNT },
      { code: 'BTC', precision: 8, maxAmount: '100000' },
    ]);
  });

  it('ignores blanks around entries and empty entries', () => {
    expect(parseCurrencyList(' USDT:6 , ,ETH:18:5.5, ', '42')).toStrictEqual([
      { code: 'USDT', precision: 6, maxAmount: '42' },
      { code: 'ETH', precision: 18, maxAmount: '5.5' },
    ]);
  });

  it('gives an empty list for an empty setting', () => {
    expect(parseCurrencyList('')).toStrictEqual([]);
  });

  it.each([
    ['usdt:6', /"usdt:6": code must be/],
    ['U:6', /"U:6": code must be/],
    ['1BTC:8', /code must be/],
    ['TOOLONGCODE1:8', /code must be/],
    ['USDT', /"USDT": precision must be an integer from 0 to 30/],
    ['USDT:', /precision must be/],
    ['USDT:x', /precision must be/],
    ['USDT:1.5', /precision must be/],
    ['USDT:-1', /precision must be/],
    ['USDT:31', /precision must be/],
    ['USDT:6:0', /"USDT:6:0": maximum amount must be a positive decimal/],
    ['USDT:6:-5', /maximum amount must be/],
    ['USDT:6:abc', /maximum amount must be/],
    ['USDT:6:', /maximum amount must be/],
    ['USDT:6,BTC', /"BTC": precision must be/],
  ])('rejects %j, naming the entry', (spec, message) => {
    expect(() => parseCurrencyList(spec)).toThrow(message);
  });

  it('looks currencies up by code', () => {
    const configured = currencies(parseCurrencyList('USDT:6,BTC:8'));
    expect(configured.codes).toStrictEqual(['USDT', 'BTC']);
    expect(configured.get('BTC')?.precision).toBe(8);
    expect(configured.get('DOGE')).toBeUndefined();
  });
});
