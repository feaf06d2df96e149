import { PriceUnavailableError, TransientError } from '../../app/ports.ts';
import type { PriceQuote, PriceService } from '../../app/ports.ts';
import { formatAmount } from '../../domain/money.ts';
import type { MarketModel } from './marketModel.ts';
import {
  drawFault,
  drawLatency,
  hang,
  outage,
  pairName,
  script,
  throwIfAborted,
  validateRates,
  wait,
} from './simulation.ts';
import type { LatencyRange } from './simulation.ts';

/**
 * What a scripted call of the simulated price feed does instead of quoting:
 * - `error`: answers with a TransientError('error') after its latency;
 * - `timeout`: never answers; TransientError('timeout') when the caller aborts (or after `hangMs`);
 * - `outage`: fails at once with TransientError('outage');
 * - `unavailable`: no price for the pair, PriceUnavailableError;
 * - `zero_price`, `negative_price`, `non_finite_price`, `nan_price`: a quote whose price is `0`,
 *   negative, `Infinity` or `NaN`, which the saga must refuse;
 * - `stale`: a correct price observed `staleFaultMs` ago.
 */
export type PriceFault =
  | 'error'
  | 'timeout'
  | 'outage'
  | 'unavailable'
  | 'zero_price'
  | 'negative_price'
  | 'non_finite_price'
  | 'nan_price'
  | 'stale';

/** Per-call probabilities (0..1, drawn from the seed) of the feed's transient faults. */
export interface PriceFeedRates {
  readonly error?: number;
  readonly timeout?: number;
  /** Probability that a call starts an outage of `outageCalls` calls. */
  readonly outage?: number;
}

const RATE_KINDS = ['error', 'timeout', 'outage'] as const;

export interface SimulatedPriceFeedOptions {
  /** The `source` every quote names (default `simulated`). */
  readonly source?: string;
  /** Answer time per call (default 0 ms). */
  readonly latency?: LatencyRange;
  /** Rates of transient faults (default none). */
  readonly rates?: PriceFeedRates;
  /** Age every quote by this many milliseconds (default 0), to test the saga's staleness check. */
  readonly staleByMs?: number;
  /** How old a quote scripted `stale` is (default 10 minutes). */
  readonly staleFaultMs?: number;
  /** Pairs (`FROM/TO`) with no price: PriceUnavailableError (default none). */
  readonly unavailablePairs?: readonly string[];
  /** How long a `timeout` hangs for a caller that passes no AbortSignal (default 10 s). */
  readonly hangMs?: number;
  /** How many calls an outage drawn by `rates.outage` lasts, the drawing call included (default 5). */
  readonly outageCalls?: number;
}

export interface PriceFaultOptions {
  /** How many calls the fault applies to (default 1). */
  readonly times?: number;
  /** Only calls for this pair (`FROM/TO`); default any pair. */
  readonly pair?: string;
}

/** The simulated price feed: a PriceService plus the switches tests and operators turn. */
export interface SimulatedPriceFeed extends PriceService {
  /** Scripts the next matching call(s) to fail in the given way; scripts queue in order. */
  failNext(kind: PriceFault, options?: PriceFaultOptions): void;
  /** Every call fails with TransientError('outage') for `calls` calls, or until {@link restore}. */
  startOutage(options?: { readonly calls?: number }): void;
  /** Ends an outage and drops every scripted fault (rates and settings stay). */
  restore(): void;
  /** Makes a pair (`FROM/TO`) have no price, or have one again. */
  setUnavailable(pair: string, unavailable?: boolean): void;
  setStaleBy(ms: number): void;
  setRates(rates: PriceFeedRates): void;
  setLatency(latency: LatencyRange): void;
  /** getMarketPrice calls received, failed ones included. */
  readonly quoteCalls: number;
}

function nonNegativeMs(ms: number, what: string): number {
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`${what} must be a non-negative number of ms: ${ms}`);
  return ms;
}

/** A price feed quoting the market model's walked prices, with failure injection. */
export function createSimulatedPriceFeed(
  market: MarketModel,
  options: SimulatedPriceFeedOptions = {},
): SimulatedPriceFeed {
  const source = options.source ?? 'simulated';
  const hangMs = nonNegativeMs(options.hangMs ?? 10_000, 'hangMs');
  const staleFaultMs = nonNegativeMs(options.staleFaultMs ?? 600_000, 'staleFaultMs');
  const outageCalls = options.outageCalls ?? 5;
  let latency: LatencyRange = options.latency ?? {};
  let rates: PriceFeedRates = options.rates ?? {};
  validateRates({ ...rates });
  let staleByMs = nonNegativeMs(options.staleByMs ?? 0, 'staleByMs');
  const unavailable = new Set(options.unavailablePairs ?? []);
  const faults = script<PriceFault, string>();
  const down = outage();
  let quoteCalls = 0;

  function quote(from: string, to: string, fault: PriceFault | undefined): PriceQuote {
    const pair = pairName(from, to);
    if (fault === 'unavailable' || unavailable.has(pair)) {
      throw new PriceUnavailableError(`No price for ${pair}`);
    }
    const price = market.price(from, to);
    if (!price) throw new PriceUnavailableError(`No price for ${pair}: the market does not trade it`);
    market.step();
    const age = fault === 'stale' ? Math.max(staleFaultMs, staleByMs) : staleByMs;
    const quotedAt = new Date(market.now().getTime() - age).toISOString();
    const text =
      fault === 'zero_price'
        ? '0'
        : fault === 'negative_price'
          ? `-${formatAmount(price)}`
          : fault === 'non_finite_price'
            ? 'Infinity'
            : fault === 'nan_price'
              ? 'NaN'
              : formatAmount(price);
    return { price: text, quoted_at: quotedAt, source };
  }

  return {
    async getMarketPrice(from, to, signal) {
      quoteCalls += 1;
      const what = `Price of ${pairName(from, to)}`;
      throwIfAborted(signal, what);
      if (down.consume()) throw new TransientError('outage', `${what}: the price feed is down (outage)`);
      // Both draws happen on every call so that scripts never shift the seeded sequence.
      const drawn = drawFault(market.random.feedFaults, rates, RATE_KINDS);
      const ms = drawLatency(market.random.feedLatency, latency);
      const fault = faults.take(pairName(from, to)) ?? drawn;
      switch (fault) {
        case 'outage':
          if (drawn === 'outage' && outageCalls > 1) down.start(outageCalls - 1);
          throw new TransientError('outage', `${what}: the price feed is down (outage)`);
        case 'timeout':
          return hang(hangMs, signal, what);
        case 'error':
          await wait(ms, signal, what);
          throw new TransientError('error', `${what}: the price feed failed (simulated error)`);
        default: {
          // The price is taken when the request arrives; the answer then takes its latency.
          let answer: PriceQuote;
          try {
            answer = quote(from, to, fault);
          } catch (error) {
            await wait(ms, signal, what);
            throw error;
          }
          await wait(ms, signal, what);
          return answer;
        }
      }
    },
    failNext(kind, faultOptions = {}) {
      const pair = faultOptions.pair;
      faults.push(kind, faultOptions.times ?? 1, pair === undefined ? undefined : (call) => call === pair);
    },
    startOutage(outageOptions = {}) {
      down.start(outageOptions.calls);
    },
    restore() {
      down.end();
      faults.clear();
    },
    setUnavailable(pair, isUnavailable = true) {
      if (isUnavailable) unavailable.add(pair);
      else unavailable.delete(pair);
    },
    setStaleBy(ms) {
      staleByMs = nonNegativeMs(ms, 'staleByMs');
    },
    setRates(next) {
      validateRates({ ...next });
      rates = next;
    },
    setLatency(next) {
      latency = next;
    },
    get quoteCalls() {
      return quoteCalls;
    },
  };
}
