/**
 * The Idempotency-Keys of order requests (table `idempotency_keys`): which order each key placed
 * and the response it got. src/infra/idempotencyKeys.ts implements it; the row is marked done by
 * the append of the order's OrderAccepted, in the same statement (AppendOptions.idempotencyKeys),
 * or, for an order placed before migration 011 and retried after it, by `complete`.
 */

/** A response as it was sent: replayed as is to a retry. */
export interface RecordedResponse {
  readonly status: number;
  readonly body: string;
}

export interface KeyClaim {
  readonly user_id: string;
  readonly idempotency_key: string;
  /** SHA-256 (hex) of the normalized request. */
  readonly fingerprint: string;
  /** The order id this request would place, should the key be new (or expired). */
  readonly order_id: string;
  /**
   * The id this key's order got before migration 011 (src/domain/ids.ts), and since when an
   * OrderAccepted counts: when the key is new (or expired) and an order stream with that id was
   * accepted after `accepted_after` (within the key TTL), the claim gives that id instead of
   * `order_id`, so that a request retried across the upgrade meets the order it placed.
   */
  readonly legacy?: { readonly order_id: string; readonly accepted_after: Date };
  /** The request's token: the claim is this request's when the row comes back with it. */
  readonly token: string;
  readonly now: Date;
  /** Until when the claim is held before another request may take it over. */
  readonly lease_until: Date;
  /** When the key may be used for a new order. */
  readonly expires_at: Date;
}

/** The key's row after a claim. */
export type KeyState =
  /** This request holds the key (new, expired and started over, or taken over after its lease ran out). */
  | { readonly state: 'claimed'; readonly order_id: string }
  /** Another request holds it and has not finished. */
  | { readonly state: 'in_flight'; readonly order_id: string; readonly fingerprint: string }
  /** A request with this key finished: its order and response. */
  | {
      readonly state: 'done';
      readonly order_id: string;
      readonly fingerprint: string;
      readonly response: RecordedResponse;
    };

/** What marks a claim done when its order was stored without it (an order placed before migration 011). */
export interface KeyDone {
  readonly user_id: string;
  readonly idempotency_key: string;
  /** The token of the request that holds the claim: nothing is marked unless it still does. */
  readonly token: string;
  readonly order_id: string;
  readonly response: RecordedResponse;
  /** When the key may be used for a new order. */
  readonly expires_at: Date;
}

export interface IdempotencyKeys {
  /**
   * In one statement: inserts the key in flight for this request, or returns the key's row as it
   * stands. An expired key starts over for this request; one in flight whose lease ran out, with
   * the same fingerprint, is taken over by it.
   */
  claim(claim: KeyClaim): Promise<KeyState>;
  /**
   * Several claims in ONE statement (one commit), each as `claim` would do it; the states in the
   * order of `claims`. No key (user and Idempotency-Key) may appear twice.
   */
  claimAll(claims: readonly KeyClaim[]): Promise<KeyState[]>;
  /**
   * Marks a claim done with its order's response, without an append: for an order that was
   * already stored (placed before migration 011, its id given by the claim). Only while `token`
   * still holds the claim in flight for that order; false otherwise (another request took it over
   * and placed or replayed the order, or the key expired and started over).
   */
  complete(done: KeyDone): Promise<boolean>;
  /** Gives a claim up (its request failed before placing the order), so a retry need not wait for the lease. */
  release(userId: string, idempotencyKey: string, token: string): Promise<void>;
  /** Deletes up to `limit` keys expired at `now`; returns how many it deleted. */
  deleteExpired(now: Date, limit: number): Promise<number>;
}
