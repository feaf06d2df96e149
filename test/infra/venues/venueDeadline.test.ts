import { afterEach, describe, expect, it } from 'vitest';
import type { SwapOutcome, TradeVenue } from '../../../src/app/ports.ts';
import { createHttpTradeWorker } from '../../../src/infra/venues/httpTradeWorker.ts';
import { createSimulatedMarket } from '../../../src/infra/venues/simulatedMarket.ts';
import type { SimulatedMarket } from '../../../src/infra/venues/simulatedMarket.ts';
import { serveSimulatedMarket } from '../../../src/infra/venues/simulatedHttpServer.ts';
import type { ServedSimulatedMarket } from '../../../src/infra/venues/simulatedHttpServer.ts';
import { testClock } from '../../helpers/saga.ts';
import { newKey, swapRequest } from './fixtures.ts';

/**
 * The venue contract that lets the saga conclude "never executed": `execute_before` enforced by
 * the venue's clock, and `voidSwap`. Run on the simulated venue itself and through the HTTP
 * adapter against the simulated server, so the two cannot drift apart.
 */

const servers: ServedSimulatedMarket[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((peer) => peer.server.close()));
});

type Setup = () => Promise<{
  market: SimulatedMarket;
  venue: TradeVenue;
  clock: ReturnType<typeof testClock>;
}>;

const setups: [string, Setup][] = [
  [
    'the simulated venue',
    () => {
      const clock = testClock(Date.parse('2025-01-01T12:00:00.000Z'));
      const market = createSimulatedMarket({ now: clock.now });
      return Promise.resolve({ market, venue: market.venue, clock });
    },
  ],
  [
    'the HTTP trade worker against the simulated server',
    async () => {
      const clock = testClock(Date.parse('2025-01-01T12:00:00.000Z'));
      const peer = await serveSimulatedMarket({ now: clock.now });
      servers.push(peer);
      return { market: peer.market, venue: createHttpTradeWorker({ baseUrl: peer.url }), clock };
    },
  ],
];

const status = (outcome: SwapOutcome | undefined) =>
  outcome?.status === 'rejected' ? `rejected:${outcome.reason}` : (outcome?.status ?? 'none');

describe.each(setups)('%s', (_, setup) => {
  describe('when a request arrives after its execute_before (by the venue clock)', () => {
    it('refuses it as expired, for good, and executes nothing', async () => {
      const { market, venue, clock } = await setup();
      const request = swapRequest({ execute_before: new Date(clock.now().getTime() - 1).toISOString() });

      const outcome = await venue.executeSwap(request);

      expect(status(outcome)).toBe('rejected:expired');
      clock.advance(-60_000);
      expect(status(await venue.executeSwap(request)), 'a repeat gets the first answer').toBe(
        'rejected:expired',
      );
      expect(market.venue.ledger()).toEqual([]);
    });
  });

  describe('when a key is voided before any request for it arrives', () => {
    it('answers voided, refuses every later request for it, and says so on lookup', async () => {
      const { market, venue } = await setup();
      const request = swapRequest();

      expect(status(await venue.voidSwap(request.idempotency_key))).toBe('voided');
      expect(status(await venue.executeSwap(request))).toBe('voided');
      expect(status(await venue.findSwap(request.idempotency_key))).toBe('voided');
      expect(status(await venue.voidSwap(request.idempotency_key)), 'voiding again is safe').toBe('voided');
      expect(market.venue.executions(request.idempotency_key)).toBe(0);
    });
  });

  describe('when a key has executed', () => {
    it('voiding it answers the execution and changes nothing', async () => {
      const { market, venue } = await setup();
      const request = swapRequest();
      const executed = await venue.executeSwap(request);

      expect(await venue.voidSwap(request.idempotency_key)).toEqual(executed);
      expect(await venue.findSwap(request.idempotency_key)).toEqual(executed);
      expect(market.venue.executions(request.idempotency_key)).toBe(1);
    });
  });

  describe('when a key was rejected', () => {
    it('voiding it answers the rejection', async () => {
      const { venue } = await setup();
      const request = swapRequest({ from_amount: '5000000' });
      await venue.executeSwap(request);

      expect(status(await venue.voidSwap(request.idempotency_key))).toBe('rejected:insufficient_liquidity');
    });
  });

  describe('when a key the venue never heard of is looked up', () => {
    it('has no outcome (which proves nothing)', async () => {
      const { venue } = await setup();
      expect(await venue.findSwap(newKey())).toBeUndefined();
    });
  });
});

describe('the simulated venue, processing requests late', () => {
  const clock = () => testClock(Date.parse('2025-01-01T12:00:00.000Z'));

  it('has no outcome for a request still being processed, then decides it', async () => {
    const time = clock();
    const market = createSimulatedMarket({ now: time.now, venue: { processingDelay: { minMs: 30 } } });
    const request = swapRequest();

    const answer = market.venue.executeSwap(request);
    expect(market.venue.recorded(request.idempotency_key)).toBe('pending');
    expect(await market.venue.findSwap(request.idempotency_key)).toBeUndefined();

    expect(status(await answer)).toBe('executed');
    expect(market.venue.executions(request.idempotency_key)).toBe(1);
  });

  it('refuses a request processed after its execute_before, even though it arrived in time', async () => {
    const time = clock();
    const market = createSimulatedMarket({ now: time.now });
    const request = swapRequest({ execute_before: new Date(time.now().getTime() + 1_000).toISOString() });
    market.venue.delayNext(20, { key: request.idempotency_key });

    const answer = market.venue.executeSwap(request);
    time.advance(5_000); // the venue's clock passes execute_before while the request waits
    expect(status(await answer)).toBe('rejected:expired');
    expect(market.venue.ledger()).toEqual([]);
  });

  it('a caller that gave up does not stop the processing: voiding it meanwhile does', async () => {
    const time = clock();
    const market = createSimulatedMarket({ now: time.now });
    const executedLater = swapRequest();
    const voidedMeanwhile = swapRequest();
    for (const r of [executedLater, voidedMeanwhile]) market.venue.delayNext(40, { key: r.idempotency_key });

    const gaveUp = await Promise.allSettled([
      market.venue.executeSwap(executedLater, AbortSignal.timeout(5)),
      market.venue.executeSwap(voidedMeanwhile, AbortSignal.timeout(5)),
    ]);
    expect(gaveUp.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(status(await market.venue.voidSwap(voidedMeanwhile.idempotency_key))).toBe('voided');

    await market.venue.settled();
    expect(status(await market.venue.findSwap(executedLater.idempotency_key))).toBe('executed');
    expect(status(await market.venue.findSwap(voidedMeanwhile.idempotency_key))).toBe('voided');
    expect(market.venue.ledger().map((e) => e.idempotency_key)).toEqual([executedLater.idempotency_key]);
  });

  it('joins a repeat of a key being processed to the first request: one decision', async () => {
    const time = clock();
    const market = createSimulatedMarket({ now: time.now, venue: { processingDelay: { minMs: 20 } } });
    const request = swapRequest();

    const outcomes = await Promise.all([
      market.venue.executeSwap(request),
      market.venue.executeSwap(request),
    ]);

    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(market.venue.executions(request.idempotency_key)).toBe(1);
  });
});
