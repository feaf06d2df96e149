import { Hono } from 'hono';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PriceUnavailableError } from '../../../src/app/ports.ts';
import type { SwapOutcome } from '../../../src/app/ports.ts';
import { serveHttp } from '../../../src/infra/server.ts';
import type { RunningServer } from '../../../src/infra/server.ts';
import { createHttpPriceService } from '../../../src/infra/venues/httpPriceService.ts';
import { createHttpTradeWorker } from '../../../src/infra/venues/httpTradeWorker.ts';
import { createSimulatedMarket } from '../../../src/infra/venues/simulatedMarket.ts';
import type { SimulatedMarketOptions } from '../../../src/infra/venues/simulatedMarket.ts';
import {
  createSimulatedMarketApp,
  serveSimulatedMarket,
} from '../../../src/infra/venues/simulatedHttpServer.ts';
import type { ServedSimulatedMarket } from '../../../src/infra/venues/simulatedHttpServer.ts';
import { fixedClock, newKey, swapRequest, transientFrom } from './fixtures.ts';

const running: RunningServer[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

/** A simulated market on 127.0.0.1 (port 0) with both adapters pointed at it. */
async function served(options: SimulatedMarketOptions = {}, timeoutMs = 2_000) {
  const peer: ServedSimulatedMarket = await serveSimulatedMarket({ now: fixedClock, ...options });
  running.push(peer.server);
  return {
    market: peer.market,
    url: peer.url,
    prices: createHttpPriceService({ baseUrl: peer.url, timeoutMs }),
    worker: createHttpTradeWorker({ baseUrl: peer.url, timeoutMs }),
  };
}

describe('the HTTP price service adapter', () => {
  describe('when the service answers 200', () => {
    it('returns the quote as sent, price a decimal string', async () => {
      const { prices } = await served({ seed: 1 });
      const twin = createSimulatedMarket({ seed: 1, now: fixedClock });

      const quotes = [await prices.getMarketPrice('USDT', 'BTC'), await prices.getMarketPrice('ETH', 'USDC')];

      expect(quotes).toEqual([
        await twin.priceService.getMarketPrice('USDT', 'BTC'),
        await twin.priceService.getMarketPrice('ETH', 'USDC'),
      ]);
      expect(quotes[0]).toEqual({
        price: '0.00001',
        quoted_at: '2025-01-01T12:00:00.000Z',
        source: 'simulated',
      });
    });

    it('passes a zero price on, for the saga to refuse', async () => {
      const { prices, market } = await served();
      market.priceService.failNext('zero_price');

      expect((await prices.getMarketPrice('USDT', 'BTC')).price).toBe('0');
    });
  });

  describe('when the service has no price (404)', () => {
    it('throws PriceUnavailableError with the service detail', async () => {
      const { prices, market } = await served();
      market.priceService.setUnavailable('USDT/BTC');

      const failure = prices.getMarketPrice('USDT', 'BTC');

      await expect(failure).rejects.toBeInstanceOf(PriceUnavailableError);
      await expect(failure).rejects.toThrow(/No price for USDT\/BTC/);
    });
  });

  describe('when the service fails', () => {
    it('maps 500 to error and 503 to outage', async () => {
      const { prices, market } = await served();
      market.priceService.failNext('error');
      const error = await transientFrom(prices.getMarketPrice('USDT', 'BTC'));
      market.priceService.startOutage();
      const outage = await transientFrom(prices.getMarketPrice('USDT', 'BTC'));

      expect(error).toMatchObject({ kind: 'error', message: expect.stringMatching(/HTTP 500/) as unknown });
      expect(outage).toMatchObject({ kind: 'outage', message: expect.stringMatching(/HTTP 503/) as unknown });
    });

    it('times out when the answer takes longer than the adapter timeout', async () => {
      const { prices } = await served({ priceFeed: { latency: { minMs: 2_000 } } }, 50);

      const error = await transientFrom(prices.getMarketPrice('USDT', 'BTC'));

      expect(error).toMatchObject({
        kind: 'timeout',
        message: expect.stringMatching(/within 50 ms/) as unknown,
      });
    });

    it('times out when the caller aborts first', async () => {
      const { prices } = await served({ priceFeed: { latency: { minMs: 2_000 } } });
      const caller = new AbortController();

      const pending = transientFrom(prices.getMarketPrice('USDT', 'BTC', caller.signal));
      caller.abort();

      expect(await pending).toMatchObject({
        kind: 'timeout',
        message: expect.stringMatching(/aborted/) as unknown,
      });
    });

    it('reports an unreachable service as an outage', async () => {
      const { prices, url } = await served();
      await Promise.all(running.splice(0).map((server) => server.close()));

      const error = await transientFrom(prices.getMarketPrice('USDT', 'BTC'));

      expect(error.kind).toBe('outage');
      expect(error.message).toContain('cannot reach the service');
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    });
  });
});

describe('the HTTP trade worker adapter', () => {
  describe('when the worker executes the swap (200)', () => {
    it('returns the executed outcome the venue booked', async () => {
      const { worker, market } = await served({ seed: 6 });
      const request = swapRequest();

      const outcome = await worker.executeSwap(request);

      const [entry] = market.venue.ledger();
      expect(outcome).toEqual({
        status: 'executed',
        idempotency_key: request.idempotency_key,
        tx_hash: entry?.tx_hash,
        to_amount: entry?.to_amount,
        executed_price: entry?.executed_price,
        executed_at: '2025-01-01T12:00:00.000Z',
      });
      expect(await worker.findSwap(request.idempotency_key)).toEqual(outcome);
    });

    it('executes once for 20 concurrent requests under one key, all answered the same', async () => {
      const { worker, market } = await served();
      const request = swapRequest();

      const outcomes = await Promise.all(Array.from({ length: 20 }, () => worker.executeSwap(request)));

      expect(new Set(outcomes.map((o) => JSON.stringify(o))).size).toBe(1);
      expect(market.venue.executions(request.idempotency_key)).toBe(1);
      expect(market.calls().executeSwap).toBe(20);
    });

    it('looks up a key with characters that need encoding', async () => {
      const { worker } = await served();
      const request = swapRequest({ idempotency_key: 'swap/1?x#y%20z' });

      const outcome = await worker.executeSwap(request);

      expect(await worker.findSwap('swap/1?x#y%20z')).toEqual(outcome);
    });
  });

  describe('when the worker rejects the swap (422)', () => {
    it('returns the rejection with its reason and detail, and the same on lookup (200)', async () => {
      const { worker, market } = await served();
      const tooBig = swapRequest({ from_amount: '2000000' });
      const tooTight = swapRequest({ min_to_amount: '1' });
      market.venue.rejectNext('venue_rejected', { key: 'swap-refused', detail: 'account frozen' });

      const outcomes: SwapOutcome[] = [
        await worker.executeSwap(tooBig),
        await worker.executeSwap(tooTight),
        await worker.executeSwap(swapRequest({ idempotency_key: 'swap-refused' })),
      ];

      expect(outcomes.map((o) => o.status === 'rejected' && o.reason)).toEqual([
        'insufficient_liquidity',
        'slippage_exceeded',
        'venue_rejected',
      ]);
      expect(outcomes[2]).toEqual({
        status: 'rejected',
        idempotency_key: 'swap-refused',
        reason: 'venue_rejected',
        detail: 'account frozen',
      });
      expect(await worker.findSwap(tooBig.idempotency_key)).toEqual(outcomes[0]);
      expect(market.venue.ledger()).toEqual([]);
    });
  });

  describe('when the worker never received the key (404)', () => {
    it('findSwap returns undefined', async () => {
      const { worker } = await served();

      expect(await worker.findSwap(newKey())).toBeUndefined();
    });
  });

  describe('when the worker fails', () => {
    it('maps a 500 to error, nothing executed', async () => {
      const { worker, market } = await served();
      market.venue.failNext('error');
      const request = swapRequest();

      const error = await transientFrom(worker.executeSwap(request));

      expect(error).toMatchObject({ kind: 'error', message: expect.stringMatching(/HTTP 500/) as unknown });
      expect(await worker.findSwap(request.idempotency_key)).toBeUndefined();
    });

    it('maps a 503 to outage, for lookups too, until the venue is restored', async () => {
      const { worker, market } = await served();
      market.venue.startOutage();
      const request = swapRequest();

      const kinds = [
        (await transientFrom(worker.executeSwap(request))).kind,
        (await transientFrom(worker.findSwap(request.idempotency_key))).kind,
      ];
      market.venue.restore();

      expect(kinds).toEqual(['outage', 'outage']);
      expect((await worker.executeSwap(request)).status).toBe('executed');
    });

    it('reports a lost answer when the connection breaks, and the lookup reveals the execution', async () => {
      const { worker, market } = await served();
      market.venue.failNext('lost_answer');
      const request = swapRequest();

      const error = await transientFrom(worker.executeSwap(request));
      const found = await worker.findSwap(request.idempotency_key);

      expect(error.kind).toBe('lost_answer');
      expect(found?.status).toBe('executed');
      expect(market.venue.executions(request.idempotency_key)).toBe(1);
    });

    it('times out on a request that never arrives, and the lookup finds nothing', async () => {
      const { worker, market } = await served({}, 100);
      market.venue.failNext('timeout');
      const request = swapRequest();

      const error = await transientFrom(worker.executeSwap(request));

      expect(error).toMatchObject({
        kind: 'timeout',
        message: expect.stringMatching(/within 100 ms/) as unknown,
      });
      // Asked of the venue directly: after an aborted request, Node 20's fetch opens a spare
      // connection that holds the server's close open for its 4 s keep-alive.
      expect(await market.venue.findSwap(request.idempotency_key)).toBeUndefined();
    });

    it('times out on a slow answer, and the lookup finds the swap executed on arrival', async () => {
      const { worker, market } = await served({ venue: { latency: { minMs: 1_000 } } }, 50);
      const request = swapRequest();

      const error = await transientFrom(worker.executeSwap(request));
      market.venue.setLatency({});

      expect(error.kind).toBe('timeout');
      expect((await market.venue.findSwap(request.idempotency_key))?.status).toBe('executed');
    });
  });
});

describe('when a peer answers outside the contract', () => {
  // A hand-written peer, since the simulated server only ever answers well-formed.
  let reply: { status: number; body: string } = { status: 200, body: '' };
  let server: RunningServer;
  let baseUrl: string;

  beforeAll(async () => {
    const app = new Hono();
    app.all(
      '*',
      () =>
        new Response(reply.body, { status: reply.status, headers: { 'content-type': 'application/json' } }),
    );
    server = await serveHttp(app.fetch, { host: '127.0.0.1', port: 0 });
    baseUrl = `http://127.0.0.1:${server.port}`;
  });
  afterAll(async () => {
    await server.close();
  });

  const cases: readonly { name: string; status: number; body: unknown; message: RegExp }[] = [
    {
      name: 'a price as a JSON number',
      status: 200,
      body: { price: 0.1, quoted_at: '2025-01-01T00:00:00Z', source: 'x' },
      message: /price/,
    },
    {
      name: 'a quote without quoted_at',
      status: 200,
      body: { price: '0.1', source: 'x' },
      message: /quoted_at/,
    },
    {
      name: 'a non-finite price',
      status: 200,
      body: { price: 'NaN', quoted_at: '2025-01-01T00:00:00Z', source: 'x' },
      message: /price must be a decimal/,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name} as a transient error`, async () => {
      reply = { status: c.status, body: JSON.stringify(c.body) };

      const error = await transientFrom(createHttpPriceService({ baseUrl }).getMarketPrice('USDT', 'BTC'));

      expect(error.kind).toBe('error');
      expect(error.message).toMatch(/malformed body/);
      expect(error.message).toMatch(c.message);
    });
  }

  it('refuses a body that is not JSON', async () => {
    reply = { status: 200, body: '<html>gateway</html>' };

    const error = await transientFrom(createHttpPriceService({ baseUrl }).getMarketPrice('USDT', 'BTC'));

    expect(error).toMatchObject({ kind: 'error', message: expect.stringMatching(/not JSON/) as unknown });
  });

  it('refuses an executed swap whose amount is a JSON number', async () => {
    reply = {
      status: 200,
      body: JSON.stringify({
        status: 'executed',
        tx_hash: '0x1',
        to_amount: 0.01,
        executed_price: '0.00001',
        executed_at: '2025-01-01T00:00:00Z',
      }),
    };

    const error = await transientFrom(createHttpTradeWorker({ baseUrl }).executeSwap(swapRequest()));

    expect(error).toMatchObject({ kind: 'error', message: expect.stringMatching(/to_amount/) as unknown });
  });

  it('refuses an answer about another key', async () => {
    const key = newKey();
    reply = {
      status: 200,
      body: JSON.stringify({
        status: 'executed',
        idempotency_key: 'swap-someone-else',
        tx_hash: '0x1',
        to_amount: '0.01',
        executed_price: '0.00001',
        executed_at: '2025-01-01T00:00:00Z',
      }),
    };

    const error = await transientFrom(createHttpTradeWorker({ baseUrl }).findSwap(key));

    expect(error).toMatchObject({ kind: 'error', message: expect.stringMatching(/not trusted/) as unknown });
  });

  it('refuses a rejection with a reason the contract does not define', async () => {
    reply = { status: 422, body: JSON.stringify({ status: 'rejected', reason: 'bored', detail: '' }) };

    const error = await transientFrom(createHttpTradeWorker({ baseUrl }).executeSwap(swapRequest()));

    expect(error).toMatchObject({ kind: 'error', message: expect.stringMatching(/reason/) as unknown });
  });

  it('accepts a rejection without idempotency_key, filling in the key asked about', async () => {
    const request = swapRequest();
    reply = {
      status: 422,
      body: JSON.stringify({ status: 'rejected', reason: 'venue_rejected', detail: 'no' }),
    };

    expect(await createHttpTradeWorker({ baseUrl }).executeSwap(request)).toEqual({
      status: 'rejected',
      idempotency_key: request.idempotency_key,
      reason: 'venue_rejected',
      detail: 'no',
    });
  });

  it('treats a status outside the contract as a transient error, and 504 as a timeout', async () => {
    reply = { status: 400, body: JSON.stringify({ detail: 'bad amount' }) };
    const badRequest = await transientFrom(createHttpTradeWorker({ baseUrl }).executeSwap(swapRequest()));
    reply = { status: 504, body: '' };
    const gateway = await transientFrom(createHttpTradeWorker({ baseUrl }).findSwap(newKey()));

    expect(badRequest).toMatchObject({
      kind: 'error',
      message: expect.stringMatching(/HTTP 400 \(bad amount\): not an answer this API defines/) as unknown,
    });
    expect(gateway.kind).toBe('timeout');
  });
});

describe('the simulated server', () => {
  describe('when a swap request is malformed', () => {
    const app = createSimulatedMarketApp(createSimulatedMarket());
    const post = (body: unknown, key?: string) =>
      app.request('/swaps', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(key === undefined ? {} : { 'idempotency-key': key }),
        },
        body: JSON.stringify(body),
      });

    it('answers 400 without an Idempotency-Key, with a key differing from the body, or with a bad field', async () => {
      const request = swapRequest();

      const missing = await post(request);
      const differing = await post(request, 'another-key');
      const badAmount = await post({ ...request, from_amount: 10 }, request.idempotency_key);

      expect(missing.status).toBe(400);
      expect(differing.status).toBe(400);
      expect(badAmount.status).toBe(400);
      expect(await badAmount.json()).toEqual({
        error: 'bad_request',
        detail: expect.stringMatching(/from_amount/) as unknown,
      });
    });

    it('answers 400 to a price request without from and to', async () => {
      expect((await app.request('/price?from=USDT')).status).toBe(400);
    });
  });
});
