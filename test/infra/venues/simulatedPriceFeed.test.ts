import { describe, expect, it } from 'vitest';
import { PriceUnavailableError } from '../../../src/app/ports.ts';
import { createSimulatedMarket } from '../../../src/infra/venues/simulatedMarket.ts';
import type { SimulatedMarketOptions } from '../../../src/infra/venues/simulatedMarket.ts';
import { FIXED_NOW, fixedClock, kindOf, transientFrom } from './fixtures.ts';

const feed = (options: SimulatedMarketOptions = {}) =>
  createSimulatedMarket({ now: fixedClock, ...options }).priceService;

describe('the simulated price feed', () => {
  describe('when a fault is scripted', () => {
    it('error: fails with a transient error, then quotes again', async () => {
      const prices = feed();
      prices.failNext('error');

      const error = await transientFrom(prices.getMarketPrice('USDT', 'BTC'));
      const quote = await prices.getMarketPrice('USDT', 'BTC');

      expect(error.kind).toBe('error');
      expect(quote.price).toBe('0.00001');
    });

    it('timeout: hangs until the caller aborts', async () => {
      const prices = feed();
      prices.failNext('timeout');
      const caller = new AbortController();

      const pending = transientFrom(prices.getMarketPrice('USDT', 'BTC', caller.signal));
      caller.abort();

      expect((await pending).kind).toBe('timeout');
    });

    it('unavailable: no price for the pair, a permanent failure', async () => {
      const prices = feed();
      prices.failNext('unavailable');

      await expect(prices.getMarketPrice('USDT', 'BTC')).rejects.toBeInstanceOf(PriceUnavailableError);
    });

    it('quotes a zero, a negative and a non-finite price for the saga to refuse', async () => {
      const prices = feed();
      prices.failNext('zero_price');
      prices.failNext('negative_price');
      prices.failNext('non_finite_price');

      const quoted = [
        (await prices.getMarketPrice('ETH', 'USDT')).price,
        (await prices.getMarketPrice('ETH', 'USDT')).price,
        (await prices.getMarketPrice('ETH', 'USDT')).price,
      ];

      expect(quoted[0]).toBe('0');
      expect(quoted[1]).toMatch(/^-34\d\d/);
      expect(quoted[2]).toBe('Infinity');
    });

    it('stale: a right price observed ten minutes ago', async () => {
      const prices = feed();
      prices.failNext('stale');

      const quote = await prices.getMarketPrice('USDT', 'BTC');

      expect(quote.price).toBe('0.00001');
      expect(FIXED_NOW.getTime() - Date.parse(quote.quoted_at)).toBe(600_000);
    });

    it('hits only the pair it names', async () => {
      const prices = feed();
      prices.failNext('error', { pair: 'ETH/USDT', times: 2 });

      await expect(prices.getMarketPrice('USDT', 'ETH')).resolves.toBeDefined();
      expect((await transientFrom(prices.getMarketPrice('ETH', 'USDT'))).kind).toBe('error');
      expect((await transientFrom(prices.getMarketPrice('ETH', 'USDT'))).kind).toBe('error');
      await expect(prices.getMarketPrice('ETH', 'USDT')).resolves.toBeDefined();
    });

    it('outage: fails every call until restore', async () => {
      const prices = feed();
      prices.startOutage();

      const kinds = [
        (await transientFrom(prices.getMarketPrice('USDT', 'BTC'))).kind,
        (await transientFrom(prices.getMarketPrice('ETH', 'BTC'))).kind,
      ];
      prices.restore();

      expect(kinds).toEqual(['outage', 'outage']);
      await expect(prices.getMarketPrice('USDT', 'BTC')).resolves.toBeDefined();
      expect(prices.quoteCalls).toBe(3);
    });
  });

  describe('when switched by setting', () => {
    it('ages every quote by staleByMs', async () => {
      const prices = feed({ priceFeed: { staleByMs: 45_000 } });

      const old = await prices.getMarketPrice('USDT', 'BTC');
      prices.setStaleBy(0);
      const fresh = await prices.getMarketPrice('USDT', 'BTC');

      expect(old.quoted_at).toBe('2025-01-01T11:59:15.000Z');
      expect(fresh.quoted_at).toBe(FIXED_NOW.toISOString());
    });

    it('has no price for an unavailable pair until it is made available again', async () => {
      const prices = feed({ priceFeed: { unavailablePairs: ['USDT/ETH'] } });

      await expect(prices.getMarketPrice('USDT', 'ETH')).rejects.toThrow(/No price for USDT\/ETH/);
      await expect(prices.getMarketPrice('ETH', 'USDT')).resolves.toBeDefined();
      prices.setUnavailable('USDT/ETH', false);
      await expect(prices.getMarketPrice('USDT', 'ETH')).resolves.toBeDefined();
    });

    it('fails at the given rates, the same calls for the same seed', async () => {
      const run = async () => {
        const prices = feed({ seed: 12, priceFeed: { rates: { error: 0.2, timeout: 0.1 }, hangMs: 1 } });
        const kinds: string[] = [];
        for (let i = 0; i < 200; i += 1) {
          kinds.push(
            await prices.getMarketPrice('BTC', 'ETH').then(
              () => 'ok',
              (error: unknown) => kindOf(error),
            ),
          );
        }
        return kinds;
      };

      const first = await run();

      expect(await run()).toEqual(first);
      expect(first.filter((k) => k === 'error').length).toBeGreaterThan(20);
      expect(first.filter((k) => k === 'timeout').length).toBeGreaterThan(8);
    });

    it('times out when the caller aborts during the latency', async () => {
      const prices = feed({ priceFeed: { latency: { minMs: 10_000 } } });
      const caller = new AbortController();

      const pending = transientFrom(prices.getMarketPrice('USDT', 'BTC', caller.signal));
      caller.abort();

      expect(await pending).toMatchObject({
        kind: 'timeout',
        message: expect.stringMatching(/aborted/) as unknown,
      });
    });
  });
});
