import { createHash } from 'node:crypto';
import { AppError, NotFoundError } from '../domain/errors.ts';
import { ORDER_EVENT_TYPES } from '../domain/events.ts';
import type { DomainEvent, OrderEvent } from '../domain/events.ts';
import { legacyOrderIdFor } from '../domain/ids.ts';
import { decideOrder, foldOrder, initialOrderState } from '../domain/order.ts';
import type { OrderState } from '../domain/order.ts';
import { DatabaseUnavailableError } from './ports/database.ts';
import { failpoint } from './failpoints.ts';
import { ConcurrencyError } from './ports/eventStore.ts';
import { domainEvent, newEvent } from './envelopes.ts';
import type { EventEnvelope } from './envelopes.ts';
import type { EventStore, KeyCompletion, NewEvent, StoredEvent } from './ports/eventStore.ts';
import type { IdempotencyKeys, KeyClaim, RecordedResponse } from './ports/idempotencyKeys.ts';
import { batchedClaims, batchedOrderAppends } from './intakeBatcher.ts';
import type { BatchingOptions, OrderAppend } from './intakeBatcher.ts';
import type { Logger } from './ports/logger.ts';
import { NO_METRICS } from './ports/metrics.ts';
import type { Metrics } from './ports/metrics.ts';
import { CURRENT_SAGA_VERSION } from '../machines/registry.ts';
import { traceCarrier } from './tracing.ts';

export const SCHEMA_VERSION = 1;

/** An order request that has passed validation; amounts are canonical decimal strings. */
export interface PlaceOrder {
  readonly user_id: string;
  readonly from_amount: string;
  readonly from_currency: string;
  readonly to_currency: string;
  readonly order_type: 'market';
}

/** The same Idempotency-Key was used before by this user for a different request. */
export class IdempotencyKeyReusedError extends AppError {
  readonly code = 'validation';
  constructor() {
    // Nothing about the request the key belongs to: that may be anybody's business but the caller's.
    super('This Idempotency-Key was already used with a different request; use a new key for a new order');
    this.name = 'IdempotencyKeyReusedError';
  }
}

/** A request with the same Idempotency-Key is still being processed. */
export class IdempotencyKeyInFlightError extends AppError {
  readonly code = 'conflict';
  constructor() {
    super(
      'A request with this Idempotency-Key is still being processed; retry it shortly to get its response',
    );
    this.name = 'IdempotencyKeyInFlightError';
  }
}

export interface Accepted {
  readonly order_id: string;
  /** True when an earlier request with the same Idempotency-Key had already placed this order. */
  readonly replayed: boolean;
  /** With an Idempotency-Key: the response recorded with the key (the first request's, for a replay). */
  readonly response?: RecordedResponse;
}

/** An Idempotency-Key and the response to record with it, built once the order id is known. */
export interface Idempotency {
  readonly key: string;
  readonly respond: (orderId: string) => RecordedResponse;
}

/** How long an Idempotency-Key is kept: after this a key may place a new order (IETF draft: 24 h). */
export const DEFAULT_KEY_TTL_MS = 24 * 60 * 60 * 1000;
/** How long a request holds its key before a retry may take it over (its process may have died). */
export const DEFAULT_KEY_LEASE_MS = 5_000;

const TERMS = ['user_id', 'from_amount', 'from_currency', 'to_currency', 'order_type'] as const;

/** Whether a stored OrderAccepted placed this very order (the terms a key's requests must share). */
function sameTerms(accepted: Readonly<Record<string, unknown>>, order: PlaceOrder): boolean {
  return TERMS.every((field) => accepted[field] === order[field]);
}

/** SHA-256 (hex) of the validated order, its terms in a fixed order: what a key's requests must share. */
export function fingerprintOf(order: PlaceOrder): string {
  return createHash('sha256')
    .update(JSON.stringify(TERMS.map((field) => order[field])))
    .digest('hex');
}

export interface OrderServiceDeps {
  readonly store: EventStore;
  readonly now: () => Date;
  readonly newId: () => string;
  /** Idempotency-Keys; an order with a key is refused without them. */
  readonly keys?: IdempotencyKeys;
  /** How long a key is kept (default 24 h). */
  readonly keyTtlMs?: number;
  /** How long a request holds its key before a retry may take it over (default 5 s). */
  readonly keyLeaseMs?: number;
  /** Acceptances at debug level, and keys that could not be released. */
  readonly logger?: Logger;
  /**
   * Group commit of claims and appends (src/app/intakeBatcher.ts): lanes and batch size, or
   * false for one statement per request (default: 4 lanes, 64 per statement).
   */
  readonly batching?: BatchingOptions | false;
  /** Counts accepted orders (none when unset). */
  readonly metrics?: Metrics;
}

export interface OrderService {
  /**
   * Records OrderAccepted (version 1) and its outbox row atomically, under a new random id. The
   * saga starts from the outbox, never from here.
   * With an Idempotency-Key (per user) the key is claimed first, then the order is appended in
   * the statement that records the key's response: a retry of the same order gets that response
   * back instead of placing a second order.
   * @param causationId the request that caused the order (its request id).
   * @throws IdempotencyKeyReusedError when the key was used with a different order.
   * @throws IdempotencyKeyInFlightError while another request with the key is being processed.
   */
  accept(
    order: PlaceOrder,
    options: { causationId: string | null; idempotency?: Idempotency },
  ): Promise<Accepted>;
  /** The order's stored events in version order; NotFoundError when there is no such order. */
  history(orderId: string): Promise<StoredEvent[]>;
  /** The order's current state, folded from its events. */
  get(orderId: string): Promise<{ state: OrderState; version: number }>;
}

/**
 * Wraps domain events for the store; the correlation id ties every event of one saga together,
 * and the active trace context (when tracing is on) ties the work they cause to the order's trace.
 */
export function toNewEvents(
  events: readonly DomainEvent[],
  context: { correlationId: string; causationId: string | null; now: string; newId: () => string },
): NewEvent[] {
  const trace = traceCarrier();
  return events.map((event) =>
    newEvent(event, {
      event_id: context.newId(),
      metadata: {
        correlation_id: context.correlationId,
        causation_id: context.causationId,
        occurred_at: context.now,
        schema_version: SCHEMA_VERSION,
        ...trace,
      },
    }),
  );
}

const isOrderEvent = (event: DomainEvent): event is OrderEvent =>
  (ORDER_EVENT_TYPES as readonly string[]).includes(event.type);

/** An order stream's events, as the domain folds them. */
export function toOrderEvents(stored: readonly EventEnvelope[]): OrderEvent[] {
  return stored.map((envelope) => {
    const event = domainEvent(envelope);
    if (!isOrderEvent(event)) throw new Error(`${event.type} ${envelope.event_id} is in an order stream`);
    return event;
  });
}

export function createOrderService(deps: OrderServiceDeps): OrderService {
  const { store, now, newId, keys, logger } = deps;

  /** One line an order, so that an operator can follow it in the logs (LOG_LEVEL=warn mutes it). */
  const acceptedLine = (orderId: string, order: PlaceOrder) =>
    logger?.info(
      {
        order_id: orderId,
        user_id: order.user_id,
        from: `${order.from_amount} ${order.from_currency}`,
        to: order.to_currency,
      },
      'order accepted',
    );
  const metrics = deps.metrics ?? NO_METRICS;
  const keyTtlMs = deps.keyTtlMs ?? DEFAULT_KEY_TTL_MS;
  const keyLeaseMs = deps.keyLeaseMs ?? DEFAULT_KEY_LEASE_MS;
  const batching = deps.batching ?? {};
  const appendOrder = batching
    ? batchedOrderAppends(store, batching)
    : ({ stream, key }: OrderAppend) => store.append([stream], key ? { idempotencyKeys: [key] } : {});
  const claimKey =
    keys && (batching ? batchedClaims(keys, batching) : (claim: KeyClaim) => keys.claim(claim));

  async function history(orderId: string): Promise<StoredEvent[]> {
    const events = await store.load(orderId);
    if (events.length === 0 || events[0]?.aggregate_type !== 'order') {
      throw new NotFoundError(`There is no order with id ${orderId}`);
    }
    return events;
  }

  /**
   * Appends the order's OrderAccepted to its new stream (expected version 0), with whatever other
   * orders are being placed at the moment (see intakeBatcher.ts), the key marked done with it.
   */
  async function place(
    order: PlaceOrder,
    orderId: string,
    at: string,
    causationId: string | null,
    key?: KeyCompletion,
  ): Promise<void> {
    const decided = decideOrder(
      { type: 'AcceptOrder', data: { order_id: orderId, ...order }, now: at },
      initialOrderState,
    );
    const result = await appendOrder({
      stream: {
        aggregate_id: orderId,
        aggregate_type: 'order',
        expected_version: 0,
        // The saga starts here, so here it records the machine version it runs on to its end.
        events: toNewEvents(decided, { correlationId: orderId, causationId, now: at, newId }).map(
          (event) => ({ ...event, metadata: { ...event.metadata, saga_version: CURRENT_SAGA_VERSION } }),
        ),
      },
      ...(key ? { key } : {}),
    });
    if (result.status !== 'appended') throw new Error(`Order id ${orderId} collided with stored events`);
    // Per order, right after its statement committed: with group commit, the first order of a
    // batch to get here stops the process before any order of that batch is answered.
    failpoint('api.after-commit');
    metrics.orderAccepted();
  }

  /**
   * Claims the key (one statement), then appends the order and marks the key done with its
   * response (one statement). A process that dies between the two leaves the key in flight: the
   * next request with it takes it over once the lease has run out. If the request it took over
   * from was only slow and placed the order meanwhile, the append meets that order (a version
   * conflict) and the key is done: its response is replayed.
   *
   * Before migration 011 a keyed order's id was derived from user and key (legacy id). A request
   * sent before the upgrade and retried after it finds no key row, so its claim prefers the legacy
   * id when that order is younger than the key TTL (one index probe in the claim's statement; no
   * round trip on the hot path). Its append then meets the legacy order: see settleConflict.
   */
  async function acceptWithKey(
    order: PlaceOrder,
    { key, respond }: Idempotency,
    causationId: string | null,
  ): Promise<Accepted> {
    if (!keys || !claimKey) throw new Error('Orders with an Idempotency-Key need the idempotency key store');
    const fingerprint = fingerprintOf(order);
    const token = newId();
    const clock = now();
    const at = clock.toISOString();
    const legacy = {
      order_id: legacyOrderIdFor(order.user_id, key),
      accepted_after: new Date(clock.getTime() - keyTtlMs),
    };
    for (let attempt = 1; ; attempt++) {
      const held = await claimKey({
        user_id: order.user_id,
        idempotency_key: key,
        fingerprint,
        order_id: newId(),
        token,
        now: clock,
        lease_until: new Date(clock.getTime() + keyLeaseMs),
        expires_at: new Date(clock.getTime() + keyTtlMs),
        legacy,
      });
      if (held.state !== 'claimed') {
        if (held.fingerprint !== fingerprint) throw new IdempotencyKeyReusedError();
        if (held.state === 'in_flight') throw new IdempotencyKeyInFlightError();
        logger?.debug({ orderId: held.order_id }, 'order request replayed');
        return { order_id: held.order_id, replayed: true, response: held.response };
      }
      const orderId = held.order_id;
      const response = respond(orderId);
      try {
        await place(order, orderId, at, causationId, {
          user_id: order.user_id,
          idempotency_key: key,
          order_id: orderId,
          response,
          fingerprint,
          claimed_by: token,
          created_at: clock,
          expires_at: new Date(clock.getTime() + keyTtlMs),
        });
        acceptedLine(orderId, order);
        return { order_id: orderId, replayed: false, response };
      } catch (error) {
        if (error instanceof ConcurrencyError && attempt === 1) {
          const settled = await settleConflict(keys, order, { key, token, orderId, response });
          if (settled) return settled;
          continue;
        }
        // Not placed: let a retry in at once rather than after the lease. Unless the database is
        // gone (the order may even have been placed, its answer lost): then the lease decides.
        if (!(error instanceof DatabaseUnavailableError)) {
          await keys.release(order.user_id, key, token).catch((releaseError: unknown) => {
            logger?.warn({ err: releaseError, orderId }, 'could not release an Idempotency-Key');
          });
        }
        throw error;
      }
    }
  }

  /**
   * The claimed order id met a stored order (a conflict at version 0): an order placed before
   * migration 011 under its legacy id, or the order of a slow request whose claim this one took
   * over. Same terms: the key is marked done with this order's response while this request still
   * holds the claim, and the order is replayed. Undefined when the claim is no longer this
   * request's (the request that took it over placed or replayed the order): claiming again tells.
   * @throws IdempotencyKeyReusedError when the stored order has other terms (a legacy order placed
   *   with this key and another body).
   */
  async function settleConflict(
    keys: IdempotencyKeys,
    order: PlaceOrder,
    claim: { key: string; token: string; orderId: string; response: RecordedResponse },
  ): Promise<Accepted | undefined> {
    const { key, token, orderId, response } = claim;
    const [accepted] = await store.load(orderId);
    if (accepted?.event_type !== 'OrderAccepted') return undefined;
    if (!sameTerms(accepted.event_data, order)) {
      // Released rather than left mapped: the row holds this request's fingerprint, not the
      // legacy order's, so kept it would refuse (422, or 409 while in flight) the true retry of
      // that order. Released, the next request with the key meets the legacy order again through
      // its claim (same terms: replayed, other terms: 422) until the legacy order is older than
      // the TTL, and then the key is free like any expired one.
      await keys.release(order.user_id, key, token).catch((releaseError: unknown) => {
        logger?.warn({ err: releaseError, orderId }, 'could not release an Idempotency-Key');
      });
      throw new IdempotencyKeyReusedError();
    }
    const done = await keys.complete({
      user_id: order.user_id,
      idempotency_key: key,
      token,
      order_id: orderId,
      response,
      // Kept for the TTL from the order's acceptance, as the key would have been: the moment the
      // claim stops finding the legacy order.
      expires_at: new Date(Date.parse(accepted.created_at) + keyTtlMs),
    });
    if (!done) return undefined;
    logger?.debug({ orderId }, 'order request replayed (an order placed before its key was recorded)');
    return { order_id: orderId, replayed: true, response };
  }

  return {
    async accept(order, { causationId, idempotency }) {
      if (idempotency) return acceptWithKey(order, idempotency, causationId);
      const orderId = newId();
      await place(order, orderId, now().toISOString(), causationId);
      acceptedLine(orderId, order);
      return { order_id: orderId, replayed: false };
    },

    history,

    async get(orderId) {
      const events = await history(orderId);
      return { state: foldOrder(toOrderEvents(events)), version: events.length };
    },
  };
}
