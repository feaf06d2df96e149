import { createMarketModel } from './marketModel.ts';
import type { MarketModel, MarketModelOptions } from './marketModel.ts';
import { createSimulatedPriceFeed } from './simulatedPriceFeed.ts';
import type { SimulatedPriceFeed, SimulatedPriceFeedOptions } from './simulatedPriceFeed.ts';
import { createSimulatedVenue } from './simulatedVenue.ts';
import type { SimulatedVenue, SimulatedVenueOptions } from './simulatedVenue.ts';

export type { MarketModel, MarketModelOptions } from './marketModel.ts';
export type {
  PriceFault,
  PriceFeedRates,
  SimulatedPriceFeed,
  SimulatedPriceFeedOptions,
} from './simulatedPriceFeed.ts';
export type {
  LedgerEntry,
  LiquidityOptions,
  LookupRates,
  SimulatedVenue,
  SimulatedVenueOptions,
  SlippageOptions,
  VenueFault,
  VenueRates,
} from './simulatedVenue.ts';
export type { LatencyRange } from './simulation.ts';

export interface SimulatedMarketOptions extends MarketModelOptions {
  /** Knobs of the price feed: latency, fault rates, staleness, unavailable pairs. */
  readonly priceFeed?: SimulatedPriceFeedOptions;
  /** Knobs of the venue: liquidity, slippage, latency, fault rates. */
  readonly venue?: SimulatedVenueOptions;
}

export interface MarketCalls {
  readonly quotes: number;
  readonly executeSwap: number;
  readonly findSwap: number;
  readonly voidSwap: number;
}

/** A simulated price feed and venue trading on one market. */
export interface SimulatedMarket {
  /** The PriceService port, with its switches. */
  readonly priceService: SimulatedPriceFeed;
  /** The TradeVenue port, with its switches and ledger. */
  readonly venue: SimulatedVenue;
  /** The shared market: prices, clock, seed. */
  readonly model: MarketModel;
  /** Calls received by the feed and the venue, failed ones included. */
  calls(): MarketCalls;
  /** Ends outages and drops scripted faults on both the feed and the venue. */
  restore(): void;
}

/**
 * The embedded default and the test double for the saga's outside world: a seeded, deterministic
 * market (prices walk one step per quote or execution) behind a price feed and a venue with
 * latency, slippage, liquidity limits, idempotency keys and failure injection. Every option is
 * optional; the defaults answer at once and never fail.
 */
export function createSimulatedMarket(options: SimulatedMarketOptions = {}): SimulatedMarket {
  const model = createMarketModel(options);
  const priceService = createSimulatedPriceFeed(model, options.priceFeed);
  const venue = createSimulatedVenue(model, options.venue);
  return {
    priceService,
    venue,
    model,
    calls: () => ({ quotes: priceService.quoteCalls, ...venue.calls() }),
    restore() {
      priceService.restore();
      venue.restore();
    },
  };
}
