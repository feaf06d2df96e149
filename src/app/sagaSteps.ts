import pRetry from 'p-retry';
import type { FailureReason, OrderEvent, PositionEvent, SagaStep } from '../domain/events.ts';
import { idempotencyKeyFor, positionIdFor } from '../domain/ids.ts';
import { Decimal, convert, decimal, formatAmount } from '../domain/money.ts';
import type { Currencies } from '../domain/money.ts';
import { decideOrder } from '../domain/order.ts';
import type { OrderState } from '../domain/order.ts';
import { decidePosition } from '../domain/position.ts';
import type { SagaCommand, SagaContext } from '../machines/orderSaga.ts';
import { PriceUnavailableError, TransientError } from './ports.ts';
import type { PriceService, SwapOutcome, SwapRequest, TradeVenue } from './ports.ts';

export interface SagaSettings {
  /** A saga that has not sent its swap this long after acceptance compensates (default 30 s). */
  readonly deadlineMs: number;
  /** Largest shortfall accepted against the quoted amount, as a fraction (default "0.01" = 1 %). */
  readonly maxSlippage: string;
  /** A quote older than this is refused as stale (default 5 s). */
  readonly maxQuoteAgeMs: number;
  /** Each call to the price service or venue gives up after this long (default 2 s). */
  readonly callTimeoutMs: number;
  /** Transient failures are retried this many times, with exponential backoff (default 4). */
  readonly retries: number;
  readonly retryMinDelayMs: number;
  readonly retryMaxDelayMs: number;
}

export const DEFAULT_SAGA_SETTINGS: SagaSettings = {
  deadlineMs: 30_000,
  maxSlippage: '0.01',
  maxQuoteAgeMs: 5_000,
  callTimeoutMs: 2_000,
  retries: 4,
  retryMinDelayMs: 25,
  retryMaxDelayMs: 1_000,
};

export interface StepDeps {
  readonly prices: PriceService;
  readonly venue: TradeVenue;
  readonly currencies: Currencies;
  readonly settings: SagaSettings;
  readonly now: () => Date;
}

/** What running a command produced: events to store, a failure, or nothing decidable yet. */
export type StepOutcome =
  | {
      readonly kind: 'append';
      /** Position events first: they get the lower ids, so the order's terminal event is last. */
      readonly position: readonly PositionEvent[];
      readonly order: readonly OrderEvent[];
    }
  | {
      readonly kind: 'failed';
      readonly reason: FailureReason;
      readonly failed_step: SagaStep;
      readonly detail: string;
    }
  /** The swap's outcome is unknown and cannot be learned now (venue unreachable): try later. */
  | { readonly kind: 'suspended'; readonly detail: string };

const STEP_OF: Record<SagaCommand, SagaStep> = {
  QuotePrice: 'quote_price',
  OpenPosition: 'open_position',
  StartSwap: 'execute_swap',
  ExecuteSwap: 'execute_swap',
  CompleteOrder: 'complete_order',
  Compensate: 'complete_order',
};

const failed = (command: SagaCommand, reason: FailureReason, detail: string): StepOutcome => ({
  kind: 'failed',
  reason,
  failed_step: STEP_OF[command],
  detail,
});

const orderEvents = (order: readonly OrderEvent[]): StepOutcome => ({ kind: 'append', position: [], order });

type AcceptedTerms = Extract<OrderState, { order_id: string }>;

function termsOf(order: OrderState): AcceptedTerms {
  if (order.status === 'initial') throw new Error('The saga has no accepted order');
  return order;
}

/**
 * The order's deadline has passed (measured from acceptance). `graceMs` extends it: a worker that
 * resumes a swap of unknown outcome waits until no other worker's call can still be in flight.
 */
export function pastDeadline(order: OrderState, deps: StepDeps, graceMs = 0): boolean {
  const terms = termsOf(order);
  return deps.now().getTime() > Date.parse(terms.accepted_at) + deps.settings.deadlineMs + graceMs;
}

/** Longest a swap call sent before the deadline can take: one call timeout. */
const inFlightWindow = (deps: StepDeps) => deps.settings.callTimeoutMs;

/** Raised inside the retry loop to stop sending once the deadline has passed. */
class DeadlinePassed extends Error {}

/** Retries transient failures with bounded exponential backoff; anything else fails at once. */
function retrying<T>(deps: StepDeps, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  return pRetry(() => call(AbortSignal.timeout(deps.settings.callTimeoutMs)).catch(asTransient), {
    retries: deps.settings.retries,
    minTimeout: deps.settings.retryMinDelayMs,
    maxTimeout: deps.settings.retryMaxDelayMs,
    randomize: true,
    shouldRetry: (error) => error instanceof TransientError,
  });
}

/** A timeout raised by our own AbortSignal is a transient failure like any other. */
function asTransient(error: unknown): never {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    throw new TransientError('timeout', error.message, { cause: error });
  }
  throw error;
}

async function quotePrice(context: SagaContext, deps: StepDeps): Promise<StepOutcome> {
  const order = termsOf(context.order);
  let quote;
  try {
    quote = await retrying(deps, (signal) =>
      deps.prices.getMarketPrice(order.from_currency, order.to_currency, signal),
    );
  } catch (error) {
    if (error instanceof PriceUnavailableError || error instanceof TransientError) {
      return failed('QuotePrice', 'price_unavailable', error.message);
    }
    throw error;
  }
  const price = /^\d+(\.\d+)?$/.test(quote.price) ? decimal(quote.price) : undefined;
  if (!price || price.lte(0)) {
    return failed('QuotePrice', 'price_unavailable', `unusable price "${quote.price}" from ${quote.source}`);
  }
  const age = deps.now().getTime() - Date.parse(quote.quoted_at);
  if (!(age <= deps.settings.maxQuoteAgeMs)) {
    return failed(
      'QuotePrice',
      'price_unavailable',
      `stale quote from ${quote.source}: quoted at ${quote.quoted_at}`,
    );
  }
  const target = deps.currencies.get(order.to_currency);
  if (!target) return failed('QuotePrice', 'venue_rejected', `${order.to_currency} is no longer supported`);
  const toAmount = convert(decimal(order.from_amount), price, target);
  if (toAmount.lte(0)) {
    return failed(
      'QuotePrice',
      'venue_rejected',
      `the order is too small to deliver any ${order.to_currency}`,
    );
  }
  return orderEvents(
    decideOrder(
      {
        type: 'QuotePrice',
        data: { price: formatAmount(price), to_amount: formatAmount(toAmount), source: quote.source },
        now: deps.now().toISOString(),
      },
      context.order,
    ),
  );
}

function swapRequest(context: SagaContext, deps: StepDeps): SwapRequest {
  const order = context.order;
  if (order.status !== 'swapping')
    throw new Error(`Cannot execute a swap for an order that is ${order.status}`);
  const target = deps.currencies.get(order.to_currency);
  const precision = target?.precision ?? 0;
  const minimum = decimal(order.quote.to_amount)
    .times(new Decimal(1).minus(deps.settings.maxSlippage))
    .toDecimalPlaces(precision, Decimal.ROUND_UP);
  return {
    idempotency_key: order.swap.idempotency_key,
    from_currency: order.from_currency,
    to_currency: order.to_currency,
    from_amount: order.from_amount,
    quoted_price: order.quote.price,
    min_to_amount: formatAmount(minimum),
  };
}

/**
 * Executes the swap, never under a new key. When a call fails in a way that leaves the outcome
 * unknown, the venue is asked for the key before anything is decided. On a resume (the saga was
 * rebuilt after SwapExecuting) the venue is asked first; past the deadline, a swap the venue never
 * received is not sent any more.
 */
async function executeSwap(context: SagaContext, deps: StepDeps, resume: boolean): Promise<StepOutcome> {
  const request = swapRequest(context, deps);
  const lookup = () => retrying(deps, (signal) => deps.venue.findSwap(request.idempotency_key, signal));

  let outcome: SwapOutcome | undefined;
  try {
    if (resume) {
      outcome = await lookup();
      if (!outcome && pastDeadline(context.order, deps, inFlightWindow(deps))) {
        return failed(
          'ExecuteSwap',
          'deadline_exceeded',
          'the venue never received the swap and the deadline has passed',
        );
      }
    }
    outcome ??= await retrying(deps, async (signal) => {
      // Never send after the deadline: a resuming worker may then decide the swap never happened.
      if (pastDeadline(context.order, deps)) throw new DeadlinePassed();
      try {
        return await deps.venue.executeSwap(request, signal);
      } catch (error) {
        // The call may have executed: only the venue knows. Ask before retrying or deciding.
        const known = await deps.venue.findSwap(
          request.idempotency_key,
          AbortSignal.timeout(deps.settings.callTimeoutMs),
        );
        if (known) return known;
        throw error;
      }
    });
  } catch (error) {
    if (error instanceof TransientError) {
      return { kind: 'suspended', detail: `swap outcome unknown: ${error.message}` };
    }
    if (!(error instanceof DeadlinePassed)) throw error;
    // Earlier attempts may have reached the venue: ask once more before deciding anything.
    outcome = await lookup().catch(() => undefined);
    if (!outcome) return { kind: 'suspended', detail: 'the deadline passed with the swap outcome unknown' };
  }

  if (outcome.status === 'rejected') return failed('ExecuteSwap', outcome.reason, outcome.detail);
  return orderEvents(
    decideOrder(
      {
        type: 'RecordSwap',
        data: {
          tx_hash: outcome.tx_hash,
          to_amount: outcome.to_amount,
          executed_price: outcome.executed_price,
        },
        now: deps.now().toISOString(),
      },
      context.order,
    ),
  );
}

/**
 * Carries out one command of the saga and says what came of it. Reads the saga's context, calls
 * the ports, decides events with the domain; stores nothing (the runner does).
 * @param resume the command comes from a rebuilt saga, so an earlier run may have started it.
 */
export async function runCommand(
  command: SagaCommand,
  context: SagaContext,
  deps: StepDeps,
  resume: boolean,
): Promise<StepOutcome> {
  const now = deps.now().toISOString();
  const order = termsOf(context.order);
  const beforeSwap = command === 'QuotePrice' || command === 'OpenPosition' || command === 'StartSwap';
  if (beforeSwap && pastDeadline(context.order, deps)) {
    return failed(
      command,
      'deadline_exceeded',
      `not done within ${deps.settings.deadlineMs} ms of acceptance`,
    );
  }

  switch (command) {
    case 'QuotePrice':
      return quotePrice(context, deps);
    case 'OpenPosition':
      return {
        kind: 'append',
        order: [],
        position: decidePosition(
          {
            type: 'CreatePosition',
            data: {
              position_id: positionIdFor(order.order_id),
              user_id: order.user_id,
              order_id: order.order_id,
              from_currency: order.from_currency,
              to_currency: order.to_currency,
            },
            now,
          },
          context.position,
        ),
      };
    case 'StartSwap':
      return orderEvents(
        decideOrder(
          {
            type: 'StartSwap',
            data: {
              idempotency_key: idempotencyKeyFor(order.order_id),
              position_id: positionIdFor(order.order_id),
            },
            now,
          },
          context.order,
        ),
      );
    case 'ExecuteSwap':
      return executeSwap(context, deps, resume);
    case 'CompleteOrder': {
      if (context.order.status !== 'swapped')
        throw new Error(`Cannot complete an order that is ${context.order.status}`);
      const { execution } = context.order;
      return {
        kind: 'append',
        position: decidePosition(
          {
            type: 'AddOrder',
            data: {
              order_id: order.order_id,
              from_amount: order.from_amount,
              to_amount: execution.to_amount,
              executed_price: execution.executed_price,
            },
            now,
          },
          context.position,
        ),
        order: decideOrder(
          { type: 'CompleteOrder', data: { position_id: positionIdFor(order.order_id) }, now },
          context.order,
        ),
      };
    }
    case 'Compensate': {
      const failure = context.failure;
      if (!failure) throw new Error('Compensating without a recorded failure');
      return {
        kind: 'append',
        position:
          context.position.status === 'open'
            ? decidePosition(
                { type: 'ClosePosition', data: { reason: 'order_failed' }, now },
                context.position,
              )
            : [],
        order: decideOrder({ type: 'FailOrder', data: failure, now }, context.order),
      };
    }
  }
}
