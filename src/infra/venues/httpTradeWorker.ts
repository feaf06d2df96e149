/**
 * TradeVenue over HTTP, for a real trade worker at `TRADE_WORKER_URL`.
 *
 * ```
 * POST {TRADE_WORKER_URL}/swaps
 * Idempotency-Key: swap-<order id>            (equal to the body's idempotency_key)
 * Content-Type: application/json
 * {"idempotency_key": "swap-…", "from_currency": "USDT", "to_currency": "BTC",
 *  "from_amount": "1000", "quoted_price": "0.00001", "min_to_amount": "0.00995",
 *  "execute_before": "2025-01-01T12:00:30.000Z"}
 *
 * 200 {"status": "executed", "idempotency_key": "swap-…", "tx_hash": "0x…",
 *      "to_amount": "0.00999", "executed_price": "0.00000999", "executed_at": "2025-01-01T12:00:00.000Z"}
 * 422 {"status": "rejected", "idempotency_key": "swap-…",
 *      "reason": "insufficient_liquidity" | "slippage_exceeded" | "venue_rejected" | "expired", "detail": "…"}
 * 422 {"status": "voided", "idempotency_key": "swap-…", "voided_at": "…"}   (the key was voided)
 *
 * The worker executes a key at most once: a repeat of a key answers the first answer again
 * (200 or 422), without executing. It refuses (`expired`) a request it receives or processes
 * after `execute_before`, by its own clock.
 *
 * GET {TRADE_WORKER_URL}/swaps/{idempotency key, URL-encoded}
 * 200 the outcome recorded for the key (any shape above, all with 200)
 * 404 no outcome for the key yet: never received, or still being processed (proves nothing)
 *
 * POST {TRADE_WORKER_URL}/swaps/{idempotency key, URL-encoded}/void
 * 200 atomically: a key that has not executed is voided and refused forever ({"status": "voided", …});
 *     a key that executed or was rejected answers that outcome. Safe to repeat.
 * ```
 *
 * Amounts and prices are decimal strings, never JSON numbers. Failures, all TransientError:
 * 503 or connection refused -> `outage`; 504, 408, no answer within the timeout or the caller's
 * abort -> `timeout`; a POST whose connection broke after sending -> `lost_answer`; other 5xx,
 * 429, any other status, or a body not of the shape above (or for another key) -> `error`.
 * After any of them a swap may or may not have executed: the saga asks GET /swaps/{key}, and past
 * the deadline settles the key with POST /swaps/{key}/void.
 */
import { z } from 'zod';
import type { SwapOutcome, SwapRequest, TradeVenue } from '../../app/ports.ts';
import { TransientError } from '../../app/ports.ts';
import { defaultHttpFetch, exchange, parseBody, statusError } from './httpCall.ts';
import type { HttpFetch } from './httpCall.ts';
import { endpoint } from './httpPriceService.ts';
import { executedSchema, outcomeSchema, rejectedSchema, voidedSchema } from './wire.ts';

const notExecutedSchema = z.discriminatedUnion('status', [rejectedSchema, voidedSchema]);

export interface HttpTradeWorkerOptions {
  /** Base URL of the trade worker, e.g. `http://trade-worker:8080` (a path prefix is kept). */
  readonly baseUrl: string;
  /** Deadline per request, body included (default 5000 ms); the caller's signal can end it sooner. */
  readonly timeoutMs?: number;
  /** The HTTP client (default: undici's request on Node, fetch on Deno). */
  readonly fetch?: HttpFetch;
}

function forKey(
  outcome: { readonly idempotency_key?: string | undefined } & Record<string, unknown>,
  key: string,
  what: string,
): void {
  // An answer about another key is a confused peer; trusting it could book the wrong swap.
  if (outcome.idempotency_key !== undefined && outcome.idempotency_key !== key) {
    throw new TransientError(
      'error',
      `${what}: the answer is for key ${outcome.idempotency_key}, not ${key}; not trusted`,
    );
  }
}

function asOutcome(parsed: ReturnType<typeof outcomeSchema.parse>, key: string): SwapOutcome {
  switch (parsed.status) {
    case 'executed':
      return { ...parsed, idempotency_key: key };
    case 'rejected':
      return { status: 'rejected', idempotency_key: key, reason: parsed.reason, detail: parsed.detail };
    case 'voided':
      return { status: 'voided', idempotency_key: key, voided_at: parsed.voided_at };
  }
}

/** A key as one path segment. */
const swapPath = (key: string, suffix = '') => `swaps/${encodeURIComponent(key)}${suffix}`;

/** A TradeVenue backed by the trade worker's `POST /swaps` and `GET /swaps/{key}`. */
export function createHttpTradeWorker(options: HttpTradeWorkerOptions): TradeVenue {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const fetchFn = options.fetch ?? defaultHttpFetch;
  endpoint(options.baseUrl, 'swaps');
  return {
    async executeSwap(request: SwapRequest, signal) {
      const key = request.idempotency_key;
      const what = `Trade worker POST /swaps (key ${key})`;
      const body: SwapRequest = {
        idempotency_key: key,
        from_currency: request.from_currency,
        to_currency: request.to_currency,
        from_amount: request.from_amount,
        quoted_price: request.quoted_price,
        min_to_amount: request.min_to_amount,
        execute_before: request.execute_before,
      };
      const answer = await exchange(
        endpoint(options.baseUrl, 'swaps'),
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json', 'idempotency-key': key },
          body: JSON.stringify(body),
        },
        { fetch: fetchFn, timeoutMs, signal, what, mayHaveEffect: true },
      );
      if (answer.status === 200 || answer.status === 422) {
        const parsed =
          answer.status === 200
            ? parseBody(answer, executedSchema, what)
            : parseBody(answer, notExecutedSchema, what);
        forKey(parsed, key, what);
        return asOutcome(parsed, key);
      }
      throw statusError(answer, what);
    },
    async findSwap(idempotencyKey, signal) {
      const what = `Trade worker GET /swaps/${idempotencyKey}`;
      const answer = await exchange(
        endpoint(options.baseUrl, swapPath(idempotencyKey)),
        { method: 'GET', headers: { accept: 'application/json' } },
        { fetch: fetchFn, timeoutMs, signal, what, mayHaveEffect: false },
      );
      if (answer.status === 404) return undefined;
      if (answer.status === 200) {
        const parsed = parseBody(answer, outcomeSchema, what);
        forKey(parsed, idempotencyKey, what);
        return asOutcome(parsed, idempotencyKey);
      }
      throw statusError(answer, what);
    },
    async voidSwap(idempotencyKey, signal) {
      const what = `Trade worker POST /swaps/${idempotencyKey}/void`;
      const answer = await exchange(
        endpoint(options.baseUrl, swapPath(idempotencyKey, '/void')),
        { method: 'POST', headers: { accept: 'application/json' } },
        { fetch: fetchFn, timeoutMs, signal, what, mayHaveEffect: true },
      );
      if (answer.status === 200) {
        const parsed = parseBody(answer, outcomeSchema, what);
        forKey(parsed, idempotencyKey, what);
        return asOutcome(parsed, idempotencyKey);
      }
      throw statusError(answer, what);
    },
  };
}
