import { describe, expect, it } from 'vitest';
import type { SwapOutcome } from '../../../src/app/ports.ts';
import { Decimal } from '../../../src/domain/money.ts';
import { createSimulatedMarket } from '../../../src/infra/venues/simulatedMarket.ts';
import type { SimulatedMarketOptions } from '../../../src/infra/venues/simulatedMarket.ts';
import { DECIMAL_STRING, fixedClock, kindOf, newKey, swapRequest, transientFrom } from './fixtures.ts';

const market = (options: SimulatedMarketOptions = {}) =>
  createSimulatedMarket({ now: fixedClock, ...options });

function executed(outcome: SwapOutcome | undefined) {
  if (outcome?.status !== 'executed')
    throw new Error(`expected an executed swap, got ${JSON.stringify(outcome)}`);
  return outcome;
}

describe('the simulated venue', () => {
  describe('when a swap fits the liquidity and the slippage bound', () => {
    it('executes it at the walked market price less slippage, and books it in the ledger', async () => {
      const { venue, model } = market({ seed: 5 });
      const marketPrice = model.price('USDT', 'BTC');
      const request = swapRequest({ min_to_amount: '0.0099' });

      const outcome = executed(await venue.executeSwap(request));

      expect(outcome.idempotency_key).toBe(request.idempotency_key);
      expect(outcome.tx_hash).toMatch(/^0x[0-9a-f]{64}$/);
      expect(outcome.executed_at).toBe('2025-01-01T12:00:00.000Z');
      expect(new Decimal(outcome.executed_price).lt(marketPrice ?? 0)).toBe(true);
      expect(venue.ledger()).toEqual([
        {
          idempotency_key: request.idempotency_key,
          from_currency: 'USDT',
          to_currency: 'BTC',
          from_amount: '1000',
          to_amount: outcome.to_amount,
          market_price: marketPrice?.toFixed(),
          executed_price: outcome.executed_price,
          min_to_amount: '0.0099',
          tx_hash: outcome.tx_hash,
          executed_at: outcome.executed_at,
        },
      ]);
      expect(venue.executions(request.idempotency_key)).toBe(1);
    });

    it('rounds to_amount down to the target precision', async () => {
      const { venue } = market({ seed: 9 });
      const precision = { BTC: 8, USDT: 6, ETH: 18 } as const;
      const cases = [
        { from_currency: 'USDT', to_currency: 'BTC', from_amount: '1234.567891' },
        { from_currency: 'BTC', to_currency: 'USDT', from_amount: '0.12345678' },
        { from_currency: 'USDC', to_currency: 'ETH', from_amount: '777.777777' },
        { from_currency: 'ETH', to_currency: 'BTC', from_amount: '1.123456789012345678' },
      ] as const;
      for (const c of cases) {
        const outcome = executed(await venue.executeSwap(swapRequest(c)));
        const exact = new Decimal(c.from_amount).times(outcome.executed_price);

        expect(outcome.to_amount).toMatch(DECIMAL_STRING);
        expect(new Decimal(outcome.to_amount).decimalPlaces()).toBeLessThanOrEqual(precision[c.to_currency]);
        expect(outcome.to_amount).toBe(
          exact.toDecimalPlaces(precision[c.to_currency], Decimal.ROUND_DOWN).toFixed(),
        );
        expect(new Decimal(outcome.to_amount).lte(exact)).toBe(true);
      }
    });

    it('slips more on a bigger order', async () => {
      // Same seed, same call sequence: only the size differs, so the random part is the same.
      const small = market({ seed: 21 });
      const big = market({ seed: 21 });
      await small.venue.executeSwap(swapRequest({ from_amount: '1000' }));
      await big.venue.executeSwap(swapRequest({ from_amount: '900000' }));
      const slip = (entry: { market_price: string; executed_price: string } | undefined) =>
        new Decimal(1).minus(new Decimal(entry?.executed_price ?? 0).div(entry?.market_price ?? 1));

      const smallSlip = slip(small.venue.ledger()[0]);
      const bigSlip = slip(big.venue.ledger()[0]);

      expect(bigSlip.gt(smallSlip)).toBe(true);
      // (900,000 - 1,000) USD of a 1,000,000 USD limit, at the default size impact of 1 %.
      expect(bigSlip.minus(smallSlip).toDecimalPlaces(9).toFixed()).toBe('0.00899');
    });
  });

  describe('when an order is worth more than the pair liquidity', () => {
    it('rejects it with insufficient_liquidity, executes nothing, and answers a repeat the same', async () => {
      const { venue } = market();
      const request = swapRequest({ from_amount: '1000001' });

      const outcome = await venue.executeSwap(request);
      const repeat = await venue.executeSwap(request);

      expect(outcome).toEqual({
        status: 'rejected',
        idempotency_key: request.idempotency_key,
        reason: 'insufficient_liquidity',
        detail: expect.stringMatching(/exceeds the 1000000 USD liquidity of USDT\/BTC/) as unknown,
      });
      expect(repeat).toEqual(outcome);
      expect(venue.ledger()).toEqual([]);
      expect(venue.executions(request.idempotency_key)).toBe(0);
    });

    it('values the order in USD, so 11 BTC overruns the default 1,000,000 USD', async () => {
      const { venue } = market();

      const outcome = await venue.executeSwap(
        swapRequest({ from_currency: 'BTC', to_currency: 'USDT', from_amount: '11' }),
      );

      expect(outcome).toMatchObject({ status: 'rejected', reason: 'insufficient_liquidity' });
    });

    it('applies a per-pair limit to the pair and its reverse', async () => {
      const { venue } = market({ venue: { liquidity: { pairs: { 'USDT/ETH': '5000' } } } });

      const over = await venue.executeSwap(swapRequest({ to_currency: 'ETH', from_amount: '6000' }));
      const reverse = await venue.executeSwap(
        swapRequest({ from_currency: 'ETH', to_currency: 'USDT', from_amount: '2' }),
      );
      const otherPair = await venue.executeSwap(swapRequest({ to_currency: 'BTC', from_amount: '6000' }));
      venue.setLiquidity('USDT/ETH', '10000');
      const raised = await venue.executeSwap(swapRequest({ to_currency: 'ETH', from_amount: '6000' }));

      expect(over).toMatchObject({ status: 'rejected', reason: 'insufficient_liquidity' });
      expect(reverse).toMatchObject({ status: 'rejected', reason: 'insufficient_liquidity' });
      expect(otherPair.status).toBe('executed');
      expect(raised.status).toBe('executed');
    });
  });

  describe('when the price would slip below min_to_amount', () => {
    it('rejects with slippage_exceeded and executes nothing', async () => {
      const { venue, model } = market({ seed: 2 });
      // Asking for the full market value leaves no room for any slippage.
      const atMarket = new Decimal(1000).times(model.price('USDT', 'BTC') ?? 0).toFixed();
      const request = swapRequest({ min_to_amount: atMarket });

      const outcome = await venue.executeSwap(request);

      expect(outcome).toMatchObject({ status: 'rejected', reason: 'slippage_exceeded' });
      expect(outcome.status === 'rejected' && outcome.detail).toMatch(/below the minimum of .* BTC/);
      expect(venue.ledger()).toEqual([]);
    });

    it('executes when the bound leaves room for the slippage', async () => {
      const { venue, model } = market({ seed: 2 });
      const minimum = new Decimal(1000)
        .times(model.price('USDT', 'BTC') ?? 0)
        .times('0.99')
        .toDecimalPlaces(8, Decimal.ROUND_DOWN);

      const outcome = executed(await venue.executeSwap(swapRequest({ min_to_amount: minimum.toFixed() })));

      expect(new Decimal(outcome.to_amount).gte(minimum)).toBe(true);
    });
  });

  describe('when a request is not one the venue can trade', () => {
    it('rejects it as venue_rejected, naming the problem', async () => {
      const { venue } = market();

      const cases = [
        [swapRequest({ to_currency: 'DOGE' }), /does not trade USDT\/DOGE/],
        [swapRequest({ from_amount: '0' }), /from_amount must be a positive decimal/],
        [swapRequest({ from_amount: '1.1234567' }), /more than 6 decimals of USDT/],
        [swapRequest({ from_amount: '0.000001', min_to_amount: '0' }), /would deliver 0 BTC/],
      ] as const;
      for (const [request, detail] of cases) {
        const outcome = await venue.executeSwap(request);
        expect(outcome).toMatchObject({ status: 'rejected', reason: 'venue_rejected' });
        expect(outcome.status === 'rejected' && outcome.detail).toMatch(detail);
      }
      expect(venue.ledger()).toEqual([]);
    });

    it('rejects the next swap on demand with the reason given', async () => {
      const { venue } = market();
      venue.rejectNext('venue_rejected', { detail: 'market closed' });
      const first = swapRequest();

      const rejected = await venue.executeSwap(first);
      const repeat = await venue.executeSwap(first);
      const next = await venue.executeSwap(swapRequest());

      expect(rejected).toEqual({
        status: 'rejected',
        idempotency_key: first.idempotency_key,
        reason: 'venue_rejected',
        detail: 'market closed',
      });
      expect(repeat).toEqual(rejected);
      expect(next.status).toBe('executed');
      expect(venue.executions(first.idempotency_key)).toBe(0);
    });

    it('forces a rejection for one key only when told which', async () => {
      const { venue } = market();
      const target = newKey();
      venue.rejectNext('insufficient_liquidity', { key: target });

      const other = await venue.executeSwap(swapRequest());
      const hit = await venue.executeSwap(swapRequest({ idempotency_key: target }));

      expect(other.status).toBe('executed');
      expect(hit).toMatchObject({ status: 'rejected', reason: 'insufficient_liquidity' });
    });
  });

  describe('when the same key arrives 20 times at once', () => {
    it('executes once and gives every caller the same answer', async () => {
      const { venue } = market({ venue: { latency: { minMs: 1, maxMs: 5 } } });
      const request = swapRequest();

      const outcomes = await Promise.all(Array.from({ length: 20 }, () => venue.executeSwap(request)));

      expect(new Set(outcomes.map((o) => JSON.stringify(o))).size).toBe(1);
      expect(outcomes[0]?.status).toBe('executed');
      expect(venue.executions(request.idempotency_key)).toBe(1);
      expect(venue.ledger()).toHaveLength(1);
      expect(venue.calls()).toEqual({ executeSwap: 20, findSwap: 0, voidSwap: 0 });
      expect(await venue.findSwap(request.idempotency_key)).toEqual(outcomes[0]);
    });

    it('answers a repeat with the first answer even when the request changed', async () => {
      const { venue } = market();
      const request = swapRequest();
      const first = await venue.executeSwap(request);

      const second = await venue.executeSwap({ ...request, from_amount: '5' });

      expect(second).toEqual(first);
      expect(venue.executions(request.idempotency_key)).toBe(1);
    });

    it('knows nothing of a key it never received', async () => {
      const { venue } = market();

      expect(await venue.findSwap(newKey())).toBeUndefined();
      expect(venue.calls().findSwap).toBe(1);
    });
  });

  describe('when a fault is scripted', () => {
    it('error: fails without executing, and a retry under the same key executes once', async () => {
      const { venue } = market();
      venue.failNext('error');
      const request = swapRequest();

      const error = await transientFrom(venue.executeSwap(request));
      const unknown = await venue.findSwap(request.idempotency_key);
      const retried = await venue.executeSwap(request);

      expect(error.kind).toBe('error');
      expect(unknown).toBeUndefined();
      expect(retried.status).toBe('executed');
      expect(venue.executions(request.idempotency_key)).toBe(1);
    });

    it('timeout: hangs until the caller aborts, then fails without executing', async () => {
      const { venue } = market();
      venue.failNext('timeout');
      const request = swapRequest();
      const caller = new AbortController();

      const pending = transientFrom(venue.executeSwap(request, caller.signal));
      caller.abort();
      const error = await pending;

      expect(error.kind).toBe('timeout');
      expect(await venue.findSwap(request.idempotency_key)).toBeUndefined();
      expect(venue.ledger()).toEqual([]);
    });

    it('timeout: gives up after hangMs for a caller without a signal', async () => {
      const { venue } = market({ venue: { hangMs: 10 } });
      venue.failNext('timeout');

      const error = await transientFrom(venue.executeSwap(swapRequest()));

      expect(error).toMatchObject({
        kind: 'timeout',
        message: expect.stringMatching(/within 10 ms/) as unknown,
      });
    });

    it('lost_answer: executes, loses the answer, and findSwap reveals the execution', async () => {
      const { venue } = market();
      venue.failNext('lost_answer');
      const request = swapRequest();

      const error = await transientFrom(venue.executeSwap(request));
      const found = await venue.findSwap(request.idempotency_key);
      const retried = await venue.executeSwap(request);

      expect(error.kind).toBe('lost_answer');
      expect(executed(found).tx_hash).toBe(venue.ledger()[0]?.tx_hash);
      expect(retried).toEqual(found);
      expect(venue.executions(request.idempotency_key)).toBe(1);
    });

    it('outage: every call, lookups included, fails until restore', async () => {
      const { venue } = market();
      const request = swapRequest();
      venue.startOutage();

      const kinds = [
        (await transientFrom(venue.executeSwap(request))).kind,
        (await transientFrom(venue.findSwap(request.idempotency_key))).kind,
        (await transientFrom(venue.executeSwap(request))).kind,
      ];
      venue.restore();

      expect(kinds).toEqual(['outage', 'outage', 'outage']);
      expect((await venue.executeSwap(request)).status).toBe('executed');
    });

    it('outage for a number of calls: ends by itself', async () => {
      const { venue } = market();
      venue.startOutage({ calls: 2 });

      const first = await transientFrom(venue.findSwap(newKey()));
      const second = await transientFrom(venue.executeSwap(swapRequest()));
      const third = await venue.executeSwap(swapRequest());

      expect([first.kind, second.kind]).toEqual(['outage', 'outage']);
      expect(third.status).toBe('executed');
    });

    it('runs scripts in order, each for its number of calls, and only on the calls they name', async () => {
      const { venue } = market();
      const key = newKey();
      venue.failNext('error', { times: 2 });
      venue.failNext('lost_answer', { key });
      venue.failNext('timeout', { call: 'findSwap' });
      const lookupCaller = new AbortController();

      const first = await transientFrom(venue.executeSwap(swapRequest()));
      const second = await transientFrom(venue.executeSwap(swapRequest({ idempotency_key: key })));
      const otherKey = await venue.executeSwap(swapRequest());
      const lookup = transientFrom(venue.findSwap(key, lookupCaller.signal));
      lookupCaller.abort();
      const lookupError = await lookup;
      const lost = await transientFrom(venue.executeSwap(swapRequest({ idempotency_key: key })));

      expect([first.kind, second.kind]).toEqual(['error', 'error']);
      expect(otherKey.status).toBe('executed');
      expect(lookupError.kind).toBe('timeout');
      expect(lost.kind).toBe('lost_answer');
      expect(venue.executions(key)).toBe(1);
    });

    it('drops pending scripts on restore', async () => {
      const { venue } = market();
      venue.failNext('error', { times: 3 });
      venue.rejectNext('venue_rejected');

      venue.restore();

      expect((await venue.executeSwap(swapRequest())).status).toBe('executed');
    });
  });

  describe('when faults are drawn at a rate', () => {
    async function runMany(options: SimulatedMarketOptions, count: number) {
      const m = market(options);
      const results: string[] = [];
      for (let i = 0; i < count; i += 1) {
        const request = swapRequest({ idempotency_key: `k-${i}` });
        try {
          results.push((await m.venue.executeSwap(request)).status);
        } catch (error) {
          results.push(kindOf(error));
        }
      }
      return { market: m, results };
    }

    it('fails about as often as asked, the same way for the same seed', async () => {
      const options = { seed: 17, venue: { rates: { error: 0.1, lost_answer: 0.1 } } };
      const first = await runMany(options, 500);
      const second = await runMany(options, 500);
      const count = (kind: string) => first.results.filter((r) => r === kind).length;

      expect(second.results).toEqual(first.results);
      expect(count('error')).toBeGreaterThan(30);
      expect(count('error')).toBeLessThan(70);
      expect(count('lost_answer')).toBeGreaterThan(30);
      expect(count('lost_answer')).toBeLessThan(70);
      // Lost answers executed; errors did not.
      expect(first.market.venue.ledger()).toHaveLength(count('executed') + count('lost_answer'));
    });

    it('leaves every lost answer findable, and never executes a key twice', async () => {
      const { market: m, results } = await runMany({ seed: 4, venue: { rates: { lost_answer: 0.3 } } }, 100);
      m.venue.setRates({});
      expect(results.filter((r) => r === 'lost_answer').length).toBeGreaterThan(15);

      for (const [i, result] of results.entries()) {
        const found = await m.venue.findSwap(`k-${i}`);
        expect(found?.status).toBe('executed');
        expect(m.venue.executions(`k-${i}`)).toBe(1);
        if (result === 'lost_answer')
          expect(await m.venue.executeSwap(swapRequest({ idempotency_key: `k-${i}` }))).toEqual(found);
      }
    });

    it('times out at the given rate without executing', async () => {
      const { market: m, results } = await runMany({ venue: { rates: { timeout: 0.5 }, hangMs: 1 } }, 40);

      expect(results.filter((r) => r === 'timeout').length).toBeGreaterThan(10);
      expect(m.venue.ledger()).toHaveLength(results.filter((r) => r === 'executed').length);
    });

    it('keeps an outage drawn by rate for outageCalls calls, lookups included', async () => {
      const { venue } = market({ seed: 8, venue: { rates: { outage: 0.05 }, outageCalls: 3 } });
      let drawn = 0;
      while (drawn === 0) {
        try {
          await venue.executeSwap(swapRequest());
        } catch (error) {
          expect(kindOf(error)).toBe('outage');
          drawn += 1;
        }
      }
      venue.setRates({});

      const during = [
        (await transientFrom(venue.findSwap(newKey()))).kind,
        (await transientFrom(venue.executeSwap(swapRequest()))).kind,
      ];

      expect(during).toEqual(['outage', 'outage']);
      expect((await venue.executeSwap(swapRequest())).status).toBe('executed');
    });

    it('fails lookups at their own rate', async () => {
      const { venue } = market({ venue: { lookupRates: { error: 1 } } });

      expect((await transientFrom(venue.findSwap(newKey()))).kind).toBe('error');
      expect((await venue.executeSwap(swapRequest())).status).toBe('executed');
    });
  });

  describe('when calls take time', () => {
    it('answers after the drawn latency', async () => {
      const { venue } = market({ venue: { latency: { minMs: 30, maxMs: 40 } } });
      const started = performance.now();

      await venue.executeSwap(swapRequest());

      expect(performance.now() - started).toBeGreaterThanOrEqual(29);
    });

    it('fails with timeout when the caller aborts during the latency, yet the swap executed on arrival', async () => {
      const { venue } = market({ venue: { latency: { minMs: 10_000 } } });
      const request = swapRequest();
      const caller = new AbortController();

      const pending = transientFrom(venue.executeSwap(request, caller.signal));
      caller.abort();
      const error = await pending;
      venue.setLatency({});

      expect(error.kind).toBe('timeout');
      expect((await venue.findSwap(request.idempotency_key))?.status).toBe('executed');
      expect(venue.executions(request.idempotency_key)).toBe(1);
    });

    it('refuses at once a call whose caller already gave up, executing nothing', async () => {
      const { venue } = market();
      const request = swapRequest();

      const error = await transientFrom(venue.executeSwap(request, AbortSignal.abort()));

      expect(error.kind).toBe('timeout');
      expect(venue.executions(request.idempotency_key)).toBe(0);
    });
  });
});
