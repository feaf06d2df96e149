import { Hono } from 'hono';
import type { Context } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { PriceUnavailableError, TransientError } from '../../app/ports.ts';
import type { SwapOutcome } from '../../app/ports.ts';
import { serveHttp } from '../server.ts';
import type { RunningServer } from '../server.ts';
import { createSimulatedMarket } from './simulatedMarket.ts';
import type { SimulatedMarket, SimulatedMarketOptions } from './simulatedMarket.ts';
import { describeIssues, IDEMPOTENCY_KEY, swapRequestSchema } from './wire.ts';

/**
 * A simulated market served over exactly the HTTP shapes of httpPriceService.ts and
 * httpTradeWorker.ts, so the adapters are tested against a real HTTP peer and operators can run
 * a fake price service and trade worker. Also `GET /health` and `GET /simulation` (calls, ledger,
 * USD prices) for whoever runs it.
 *
 * Simulated faults travel as a real peer would show them: `error` → 500, `outage` → 503,
 * `timeout` → no answer until the client gives up, `lost_answer` → a 200 whose body breaks off.
 */

function errorResponse(c: Context, status: 400 | 404 | 500 | 503 | 504, error: string, detail: string) {
  return c.json({ error, detail }, status);
}

const PARTIAL_BODY = '{"status":"exec';

/** The Node response object @hono/node-server passes as `env.outgoing`. */
interface NodeOutgoing {
  writeHead(status: number, headers: Record<string, string>): unknown;
  write(chunk: string): unknown;
  destroy(): unknown;
}

/**
 * A response that starts like an answer and then breaks: the connection fails mid-body, as when
 * a worker crashes after executing. On Node the socket is cut directly (an errored body stream
 * would be logged by @hono/node-server as a server bug); elsewhere the body stream errors.
 */
function brokenAnswer(c: Context): Response {
  const outgoing = (c.env as { outgoing?: Partial<NodeOutgoing> } | undefined)?.outgoing;
  if (outgoing?.writeHead && outgoing.write && outgoing.destroy) {
    outgoing.writeHead(200, { 'content-type': 'application/json' });
    outgoing.write(PARTIAL_BODY);
    outgoing.destroy();
    return RESPONSE_ALREADY_SENT;
  }
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(PARTIAL_BODY));
      controller.error(new Error('simulated lost answer'));
    },
  });
  return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
}

function failure(c: Context, error: unknown): Response {
  if (error instanceof TransientError) {
    switch (error.kind) {
      case 'outage':
        return errorResponse(c, 503, 'outage', error.message);
      case 'timeout':
        return errorResponse(c, 504, 'timeout', error.message);
      case 'lost_answer':
        return brokenAnswer(c);
      case 'error':
        return errorResponse(c, 500, 'error', error.message);
    }
  }
  throw error;
}

/** `notExecutedStatus`: 422 for POST /swaps (rejected or voided), 200 for lookups and voids. */
function outcomeResponse(c: Context, outcome: SwapOutcome, notExecutedStatus: 200 | 422): Response {
  return c.json(outcome, outcome.status === 'executed' ? 200 : notExecutedStatus);
}

/** The Hono app serving `market`; see the module comment for the routes. */
export function createSimulatedMarketApp(market: SimulatedMarket): Hono {
  const app = new Hono();

  app.get('/health', (c) => c.json({ status: 'ok' }));

  app.get('/simulation', (c) =>
    c.json({
      seed: market.model.seed,
      steps: market.model.steps,
      usd_prices: market.model.usdPrices(),
      calls: market.calls(),
      ledger: market.venue.ledger(),
    }),
  );

  app.get('/price', async (c) => {
    const from = c.req.query('from');
    const to = c.req.query('to');
    if (!from || !to)
      return errorResponse(c, 400, 'bad_request', 'query parameters from and to are required');
    try {
      return c.json(await market.priceService.getMarketPrice(from, to, c.req.raw.signal), 200);
    } catch (error) {
      if (error instanceof PriceUnavailableError) {
        return errorResponse(c, 404, 'price_unavailable', error.message);
      }
      return failure(c, error);
    }
  });

  app.post('/swaps', async (c) => {
    const key = c.req.header('idempotency-key');
    if (key === undefined || !IDEMPOTENCY_KEY.test(key)) {
      return errorResponse(
        c,
        400,
        'bad_request',
        'header Idempotency-Key is required: 1 to 255 visible ASCII',
      );
    }
    let json: unknown;
    try {
      json = await c.req.json();
    } catch {
      return errorResponse(c, 400, 'bad_request', 'body must be JSON');
    }
    const parsed = swapRequestSchema.safeParse(json);
    if (!parsed.success) return errorResponse(c, 400, 'bad_request', describeIssues(parsed.error));
    if (parsed.data.idempotency_key !== key) {
      return errorResponse(c, 400, 'bad_request', 'Idempotency-Key differs from the body idempotency_key');
    }
    try {
      return outcomeResponse(c, await market.venue.executeSwap(parsed.data, c.req.raw.signal), 422);
    } catch (error) {
      return failure(c, error);
    }
  });

  app.get('/swaps/:key', async (c) => {
    const key = c.req.param('key');
    try {
      const outcome = await market.venue.findSwap(key, c.req.raw.signal);
      if (!outcome) return errorResponse(c, 404, 'not_found', `No swap was received with key ${key}`);
      return outcomeResponse(c, outcome, 200);
    } catch (error) {
      return failure(c, error);
    }
  });

  app.post('/swaps/:key/void', async (c) => {
    try {
      return outcomeResponse(c, await market.venue.voidSwap(c.req.param('key'), c.req.raw.signal), 200);
    } catch (error) {
      return failure(c, error);
    }
  });

  return app;
}

export interface ServedSimulatedMarket {
  readonly market: SimulatedMarket;
  readonly server: RunningServer;
  /** `http://host:port`: use it as both PRICE_SERVICE_URL and TRADE_WORKER_URL. */
  readonly url: string;
}

/**
 * Creates a simulated market and serves it (Node or Deno); port 0 picks a free port.
 */
export async function serveSimulatedMarket(
  options: SimulatedMarketOptions & { readonly host?: string; readonly port?: number } = {},
): Promise<ServedSimulatedMarket> {
  const market = createSimulatedMarket(options);
  const host = options.host ?? '127.0.0.1';
  const app = createSimulatedMarketApp(market);
  // app.fetch itself, so that @hono/node-server's env (the Node response) reaches brokenAnswer.
  const server = await serveHttp(app.fetch, { host, port: options.port ?? 0 });
  return { market, server, url: `http://${host.includes(':') ? `[${host}]` : host}:${server.port}` };
}
