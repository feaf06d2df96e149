import { it } from 'vitest';
import type { PriceFault } from '../../src/infra/venues/simulatedMarket.ts';
import { expectClean, runScenario, runWithPacedFaults } from './harness.ts';

/**
 * The price feed answers at most every 3rd quote with a price no one may trade on: zero, negative,
 * `Infinity`, `NaN` and stale (observed 10 minutes ago), in turn, over HTTP as a real feed would.
 * One row for the five: they meet the same checks (the HTTP adapter's schema, the saga's quote
 * step) and 200 orders give each several hits, so five runs would cost four more starts for nothing.
 */
it('price: the feed quotes zero, negative, Infinity, NaN and stale prices, in turn, on at most every 3rd quote', async () => {
  await runScenario(
    { group: 'price', scenario: 'bad prices: zero, negative, Infinity, NaN, stale' },
    async (s) => {
      const feed = s.market.priceService;
      const kinds: PriceFault[] = ['zero_price', 'negative_price', 'non_finite_price', 'nan_price', 'stale'];
      const injected = await runWithPacedFaults(s, {
        every: 3,
        calls: () => feed.quoteCalls,
        inject: (n) => feed.failNext(kinds[n % kinds.length] ?? 'stale'),
        restore: () => feed.restore(),
      });
      expectClean(
        await s.finish({
          faults: `${injected} bad quotes: zero, negative, Infinity, NaN and 10-minute-old prices in turn`,
          faultsInjected: injected,
        }),
      );
    },
  );
});
