import { describe, expect, it } from 'vitest';
import { PriceUnavailableError } from '../../../src/app/ports.ts';
import { Decimal } from '../../../src/domain/money.ts';
import { createSimulatedMarket } from '../../../src/infra/venues/simulatedMarket.ts';
import type { SimulatedMarket, SimulatedMarketOptions } from '../../../src/infra/venues/simulatedMarket.ts';
import { DECIMAL_STRING, fixedClock, swapRequest } from './fixtures.ts';

const PAIRS = [
  ['USDT', 'BTC'],
  ['BTC', 'USDT'],
  ['USDC', 'ETH'],
  ['ETH', 'BTC'],
  ['USDT', 'USDC'],
] as const;

/** A fixed script of quotes and swaps; its transcript is everything a seed must reproduce. */
async function transcript(market: SimulatedMarket): Promise<unknown[]> {
  const seen: unknown[] = [];
  for (let round = 0; round < 20; round += 1) {
    for (const [from, to] of PAIRS) seen.push(await market.priceService.getMarketPrice(from, to));
    const amount = String(1000 * (round + 1));
    seen.push(
      await market.venue.executeSwap(swapRequest({ idempotency_key: `key-${round}`, from_amount: amount })),
    );
  }
  seen.push(market.venue.ledger(), market.model.usdPrices());
  return seen;
}

const market = (options: SimulatedMarketOptions = {}) =>
  createSimulatedMarket({ now: fixedClock, ...options });

describe('the simulated market', () => {
  describe('when two markets share a seed', () => {
    it('quotes the same prices and books the same outcomes, hashes included', async () => {
      const first = await transcript(market({ seed: 42 }));
      const second = await transcript(market({ seed: 42 }));

      expect(second).toEqual(first);
    });

    it('differs from a market with another seed', async () => {
      const first = await transcript(market({ seed: 42 }));
      const other = await transcript(market({ seed: 43 }));

      expect(other).not.toEqual(first);
    });

    it('keeps the same price path when the feed fails at a rate (faults draw from their own stream)', async () => {
      const calm = market({ seed: 7 });
      const flaky = market({ seed: 7, priceFeed: { rates: { error: 0.4 } } });
      const calmPrices: string[] = [];
      const flakyPrices: string[] = [];
      for (let i = 0; i < 50; i += 1) {
        calmPrices.push((await calm.priceService.getMarketPrice('ETH', 'USDT')).price);
      }
      while (flakyPrices.length < 50) {
        try {
          flakyPrices.push((await flaky.priceService.getMarketPrice('ETH', 'USDT')).price);
        } catch {
          // A failed quote takes no step: the next success sees the next price of the path.
        }
      }

      expect(flaky.calls().quotes).toBeGreaterThan(60);
      expect(flakyPrices).toEqual(calmPrices);
    });
  });

  describe('when prices are quoted', () => {
    it('starts from the reference prices', async () => {
      const { priceService } = market();

      expect((await priceService.getMarketPrice('USDT', 'BTC')).price).toBe('0.00001');
      expect((await market().priceService.getMarketPrice('ETH', 'USDT')).price).toBe('3500');
    });

    it('quotes positive decimal strings of at most 18 significant digits, truncated', async () => {
      const { priceService, model } = market({ seed: 3 });
      for (let i = 0; i < 200; i += 1) {
        const [from, to] = PAIRS[i % PAIRS.length] ?? PAIRS[0];
        const expected = model.price(from, to);
        const { price } = await priceService.getMarketPrice(from, to);

        expect(price).toMatch(DECIMAL_STRING);
        expect(new Decimal(price).gt(0)).toBe(true);
        expect(new Decimal(price).precision()).toBeLessThanOrEqual(18);
        expect(price).toBe(expected?.toFixed());
      }
    });

    it('truncates rather than rounds the ratio of USD prices', async () => {
      const { priceService } = market({ usdPrices: { BTC: '3' }, volatility: { BTC: '0' } });

      // 1/3 = 0.333…; truncated to 18 significant digits, never rounded up to …4.
      expect((await priceService.getMarketPrice('USDT', 'BTC')).price).toBe('0.333333333333333333');
    });

    it('walks one step per quote and not with wall-clock time', async () => {
      const { priceService, model } = market();
      const before = model.usdPrices();
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect(model.usdPrices()).toEqual(before);

      await priceService.getMarketPrice('BTC', 'USDT');

      expect(model.steps).toBe(1);
      expect(model.usdPrices()).not.toEqual(before);
    });

    it('keeps stablecoins near their peg while BTC wanders', async () => {
      const { priceService, model } = market({ seed: 11 });
      for (let i = 0; i < 3000; i += 1) await priceService.getMarketPrice('USDT', 'BTC');

      const usdt = new Decimal(model.usdPrices().USDT ?? '0');
      expect(usdt.minus(1).abs().lt('0.001')).toBe(true);
      expect(model.usdPrices().BTC).not.toBe('100000');
    });

    it('stamps quoted_at with the injected clock and names its source', async () => {
      const { priceService } = market({ priceFeed: { source: 'sim-eu' } });

      const quote = await priceService.getMarketPrice('USDT', 'ETH');

      expect(quote.quoted_at).toBe('2025-01-01T12:00:00.000Z');
      expect(quote.source).toBe('sim-eu');
    });

    it('has no price for a currency against itself or for a currency it does not trade', async () => {
      const { priceService } = market();

      await expect(priceService.getMarketPrice('USDT', 'USDT')).rejects.toBeInstanceOf(PriceUnavailableError);
      await expect(priceService.getMarketPrice('USDT', 'DOGE')).rejects.toThrow(/No price for USDT\/DOGE/);
    });
  });

  describe('when it is configured badly', () => {
    it('names the offending option', () => {
      expect(() => market({ usdPrices: { BTC: '-1' } })).toThrow(/USD price of BTC/);
      expect(() => market({ volatility: { ETH: '2' } })).toThrow(/volatility of ETH/);
      expect(() => market({ venue: { liquidity: { defaultUsd: 'lots' } } })).toThrow(/liquidity.defaultUsd/);
      expect(() => market({ venue: { rates: { error: 0.7, timeout: 0.5 } } })).toThrow(/add up to 1.2/);
      expect(() => market({ seed: 1.5 })).toThrow(/seed/);
    });
  });
});
