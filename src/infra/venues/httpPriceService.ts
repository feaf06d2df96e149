/**
 * PriceService over HTTP, for a real price service at `PRICE_SERVICE_URL`.
 *
 * ```
 * GET {PRICE_SERVICE_URL}/price?from=USDT&to=BTC
 *
 * 200 {"price": "0.0000100234", "quoted_at": "2025-01-01T12:00:00.000Z", "source": "binance"}
 *       price: units of `to` per one unit of `from`, a decimal STRING (never a JSON number, so no
 *              precision is lost); quoted_at: ISO-8601 with zone, when the price was observed.
 * 404 {"error": "price_unavailable", "detail": "..."}  no price for the pair
 *       -> PriceUnavailableError (the order fails with price_unavailable)
 * 503                    -> TransientError('outage')
 * 504, 408               -> TransientError('timeout')
 * other 5xx, 429         -> TransientError('error')
 * no answer within the timeout, or the caller's signal aborts  -> TransientError('timeout')
 * connection refused / host unknown                          -> TransientError('outage')
 * a 200 whose body is not that shape, any other status      -> TransientError('error')
 * ```
 *
 * A zero or negative price is passed on as quoted (it is well-formed); refusing it is the saga's
 * decision, as is refusing a stale `quoted_at`.
 */
import { PriceUnavailableError } from '../../app/ports.ts';
import type { PriceQuote, PriceService } from '../../app/ports.ts';
import { defaultHttpFetch, detailOf, exchange, parseBody, statusError } from './httpCall.ts';
import type { HttpFetch } from './httpCall.ts';
import { priceQuoteSchema } from './wire.ts';

export interface HttpPriceServiceOptions {
  /** Base URL of the price service, e.g. `http://prices:8080` (a path prefix is kept). */
  readonly baseUrl: string;
  /** Deadline per request, body included (default 2000 ms); the caller's signal can end it sooner. */
  readonly timeoutMs?: number;
  /** The HTTP client (default: undici's request on Node, fetch on Deno). */
  readonly fetch?: HttpFetch;
}

/** Joins a base URL and a path without losing the base's own path. */
export function endpoint(baseUrl: string, path: string): URL {
  return new URL(`${baseUrl.replace(/\/+$/, '')}/${path}`);
}

/** A PriceService backed by `GET {baseUrl}/price?from=&to=`. */
export function createHttpPriceService(options: HttpPriceServiceOptions): PriceService {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const fetchFn = options.fetch ?? defaultHttpFetch;
  // Fail at start-up, not on the first order, when the URL is malformed.
  endpoint(options.baseUrl, 'price');
  return {
    async getMarketPrice(from, to, signal): Promise<PriceQuote> {
      const url = endpoint(options.baseUrl, 'price');
      url.searchParams.set('from', from);
      url.searchParams.set('to', to);
      const what = `Price service GET /price?from=${from}&to=${to}`;
      const answer = await exchange(
        url,
        { method: 'GET', headers: { accept: 'application/json' } },
        { fetch: fetchFn, timeoutMs, signal, what, mayHaveEffect: false },
      );
      if (answer.status === 200) return parseBody(answer, priceQuoteSchema, what);
      if (answer.status === 404) {
        const detail = detailOf(answer);
        throw new PriceUnavailableError(`No price for ${from}/${to}${detail ? `: ${detail}` : ''}`);
      }
      throw statusError(answer, what);
    },
  };
}
