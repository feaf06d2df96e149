import { currencies as defaultCurrencies, Decimal } from '../../domain/money.ts';
import type { Currencies } from '../../domain/money.ts';
import { randomStreams } from './simulation.ts';
import type { MarketStreams } from './simulation.ts';

/**
 * The simulated market both the price feed and the venue read: a USD reference price per
 * currency, moved by a seeded random walk one step per quote or execution (not per wall-clock
 * tick), so a run is reproducible from its seed and its sequence of calls.
 */

/** Default USD reference prices. */
export const DEFAULT_USD_PRICES: Readonly<Record<string, string>> = {
  USDT: '1',
  USDC: '1',
  BTC: '100000',
  ETH: '3500',
};

/** Currencies whose price is pulled back towards its start by default (stablecoins). */
export const DEFAULT_PEGGED: readonly string[] = ['USDT', 'USDC'];

/** Largest relative move per step for a pegged currency (1 bp) and for any other (10 bp). */
const PEGGED_VOLATILITY = '0.0001';
const FLOATING_VOLATILITY = '0.001';

/** Significant digits a price carries: plenty for an 18-decimal currency, and finite. */
export const PRICE_SIGNIFICANT_DIGITS = 18;

export interface MarketModelOptions {
  /** Seed of every random draw (default 1). The same seed and calls give the same prices and outcomes. */
  readonly seed?: number;
  /** Currencies and their precisions (default: those of src/domain/money.ts). */
  readonly currencies?: Currencies;
  /** Starting USD price per currency, as decimal strings; merged over {@link DEFAULT_USD_PRICES}. */
  readonly usdPrices?: Readonly<Record<string, string>>;
  /**
   * Largest relative move per step per currency, e.g. `'0.001'` for ±0.1 %; the move is uniform in
   * ±volatility. Defaults: 0.0001 for pegged currencies, 0.001 for others. `'0'` freezes a price.
   */
  readonly volatility?: Readonly<Record<string, string>>;
  /** Currencies pulled back towards their starting price each step (default USDT, USDC). */
  readonly pegged?: readonly string[];
  /** Share of a pegged currency's distance from its peg closed per step (default `'0.1'`). */
  readonly pegReversion?: string;
  /** The market's clock, for quoted_at and executed_at (default: the system clock). */
  readonly now?: () => Date;
}

export interface MarketModel {
  readonly seed: number;
  readonly currencies: Currencies;
  /** The random streams of this market; each purpose has its own. */
  readonly random: MarketStreams;
  now(): Date;
  /** Moves every price one random-walk step. */
  step(): void;
  /** Steps taken so far. */
  readonly steps: number;
  /** The current USD price of a currency, or `undefined` when the market does not trade it. */
  usdPrice(code: string): Decimal | undefined;
  /** The current USD prices of every traded currency, as decimal strings. */
  usdPrices(): Readonly<Record<string, string>>;
  /** Pins a currency's USD price (it walks on from there); lets tests move the market at will. */
  setUsdPrice(code: string, usd: string): void;
  /** Units of `to` per unit of `from`, truncated to 18 significant digits; `undefined` when untraded. */
  price(from: string, to: string): Decimal | undefined;
}

function positiveDecimal(text: string, what: string): Decimal {
  let value: Decimal;
  try {
    value = new Decimal(text);
  } catch {
    throw new Error(`${what} must be a decimal number: ${text}`);
  }
  if (!value.isFinite() || value.lte(0)) throw new Error(`${what} must be greater than zero: ${text}`);
  return value;
}

function fraction(text: string, what: string, max: number): Decimal {
  let value: Decimal;
  try {
    value = new Decimal(text);
  } catch {
    throw new Error(`${what} must be a decimal number: ${text}`);
  }
  if (!value.isFinite() || value.lt(0) || value.gte(max)) {
    throw new Error(`${what} must be at least 0 and below ${max}: ${text}`);
  }
  return value;
}

/** Creates a market model; throws on a malformed option, naming it. */
export function createMarketModel(options: MarketModelOptions = {}): MarketModel {
  const seed = options.seed ?? 1;
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer: ${seed}`);
  const list = options.currencies ?? defaultCurrencies();
  const now = options.now ?? (() => new Date());
  const random = randomStreams(seed);
  const pegged = new Set(options.pegged ?? DEFAULT_PEGGED);
  const reversion = fraction(options.pegReversion ?? '0.1', 'pegReversion', 1.000001);

  const startPrices = { ...DEFAULT_USD_PRICES, ...options.usdPrices };
  const prices = new Map<string, Decimal>();
  const anchors = new Map<string, Decimal>();
  const volatility = new Map<string, Decimal>();
  // Sorted so the order of draws per step never depends on the order options were written in.
  for (const code of Object.keys(startPrices).sort()) {
    const text = startPrices[code];
    if (text === undefined || !list.get(code)) continue;
    const usd = positiveDecimal(text, `USD price of ${code}`);
    prices.set(code, usd);
    anchors.set(code, usd);
    const defaultVolatility = pegged.has(code) ? PEGGED_VOLATILITY : FLOATING_VOLATILITY;
    volatility.set(
      code,
      fraction(options.volatility?.[code] ?? defaultVolatility, `volatility of ${code}`, 1),
    );
  }

  let steps = 0;
  return {
    seed,
    currencies: list,
    random,
    now,
    step() {
      steps += 1;
      for (const [code, usd] of prices) {
        const vol = volatility.get(code) ?? new Decimal(0);
        // fraction() is in [0, 1): map to a move in [-vol, +vol).
        const move = random.walk.fraction().times(2).minus(1).times(vol);
        let next = usd.times(move.plus(1));
        const anchor = anchors.get(code);
        if (pegged.has(code) && anchor) next = next.plus(anchor.minus(next).times(reversion));
        prices.set(code, next.toSignificantDigits(PRICE_SIGNIFICANT_DIGITS, Decimal.ROUND_DOWN));
      }
    },
    get steps() {
      return steps;
    },
    usdPrice: (code) => prices.get(code),
    usdPrices: () => Object.fromEntries([...prices].map(([code, usd]) => [code, usd.toFixed()])),
    setUsdPrice(code, usd) {
      if (!list.get(code)) throw new Error(`Unknown currency ${code}`);
      const value = positiveDecimal(usd, `USD price of ${code}`);
      prices.set(code, value);
      if (!volatility.has(code)) {
        volatility.set(code, new Decimal(pegged.has(code) ? PEGGED_VOLATILITY : FLOATING_VOLATILITY));
      }
      if (!anchors.has(code)) anchors.set(code, value);
    },
    price(from, to) {
      const fromUsd = prices.get(from);
      const toUsd = prices.get(to);
      if (!fromUsd || !toUsd || from === to) return undefined;
      return fromUsd.div(toUsd).toSignificantDigits(PRICE_SIGNIFICANT_DIGITS, Decimal.ROUND_DOWN);
    },
  };
}
