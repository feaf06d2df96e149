/**
 * The saga's outside world: a price service and a trade venue. Simulated implementations (the
 * embedded default and the test double) and HTTP adapters live in src/infra/venues.
 *
 * Prices are decimal strings: units of `to` currency per one unit of `from` currency.
 */

export interface PriceQuote {
  readonly price: string;
  /** When the source observed the price (ISO-8601); the saga refuses stale quotes. */
  readonly quoted_at: string;
  /** Who quoted it, e.g. `simulated` or the price service's name. */
  readonly source: string;
}

export interface PriceService {
  /**
   * The current market price of `from` in `to`.
   * @throws PriceUnavailableError when there is no price for the pair (permanent for this order).
   * @throws TransientError when the service failed or timed out (worth retrying).
   */
  getMarketPrice(from: string, to: string, signal?: AbortSignal): Promise<PriceQuote>;
}

export interface SwapRequest {
  /** The venue executes each key at most once and answers a repeat with the first answer. */
  readonly idempotency_key: string;
  readonly from_currency: string;
  readonly to_currency: string;
  readonly from_amount: string;
  /** The quoted price the order was priced at. */
  readonly quoted_price: string;
  /** The venue must not deliver less than this (slippage bound); it rejects instead. */
  readonly min_to_amount: string;
  /**
   * ISO-8601 instant (the order's acceptance plus the saga's deadline). The venue refuses to
   * execute a request it receives or processes after it, by its own clock (`rejected`, reason
   * `expired`), as a DEX enforces a swap's deadline or an exchange its receive window.
   */
  readonly execute_before: string;
}

/** `expired`: the request reached or was processed by the venue after its `execute_before`. */
export type SwapRejection = 'insufficient_liquidity' | 'slippage_exceeded' | 'venue_rejected' | 'expired';

export type SwapOutcome =
  | {
      readonly status: 'executed';
      readonly idempotency_key: string;
      readonly tx_hash: string;
      readonly to_amount: string;
      readonly executed_price: string;
      readonly executed_at: string;
    }
  | {
      readonly status: 'rejected';
      readonly idempotency_key: string;
      readonly reason: SwapRejection;
      readonly detail: string;
    }
  /** The key was voided before it executed ({@link TradeVenue.voidSwap}): it never will. */
  | {
      readonly status: 'voided';
      readonly idempotency_key: string;
      readonly voided_at: string;
    };

export interface TradeVenue {
  /**
   * Executes the swap once per idempotency key; a repeat of a key returns the first outcome
   * without executing again.
   * @throws TransientError when the call failed, timed out or its answer was lost: the swap
   *   may or may not have executed, so ask `findSwap` before deciding anything.
   */
  executeSwap(request: SwapRequest, signal?: AbortSignal): Promise<SwapOutcome>;
  /**
   * The outcome recorded for a key, or `undefined` when the venue has none yet: it never received
   * the key, or a request for it is still being processed. `undefined` proves nothing: a request
   * may still be on its way. Only {@link voidSwap} settles that a swap never executed.
   * @throws TransientError when the lookup itself failed.
   */
  findSwap(idempotencyKey: string, signal?: AbortSignal): Promise<SwapOutcome | undefined>;
  /**
   * Settles a key for good, atomically at the venue: a key that has not executed is recorded as
   * voided and refused forever (any request for it, earlier or later, answers `voided`); a key
   * that executed (or was rejected) answers that outcome. The only answer from which the saga may
   * conclude that a swap never executed. Safe to repeat.
   * @throws TransientError when the call failed: nothing can be concluded, ask again later.
   */
  voidSwap(idempotencyKey: string, signal?: AbortSignal): Promise<SwapOutcome>;
}

/** A failure worth retrying: an error answer, a timeout, a lost answer, an outage. */
export class TransientError extends Error {
  readonly kind: 'error' | 'timeout' | 'lost_answer' | 'outage';
  constructor(kind: TransientError['kind'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransientError';
    this.kind = kind;
  }
}

/** Rethrows a timeout raised by the caller's own AbortSignal as the transient failure it is. */
export function asTransient(error: unknown): never {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    throw new TransientError('timeout', error.message, { cause: error });
  }
  throw error;
}

/** No usable price for the pair: the order cannot be priced. */
export class PriceUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PriceUnavailableError';
  }
}
