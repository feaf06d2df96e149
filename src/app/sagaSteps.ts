import pRetry from 'p-retry';
import type { OrderEvent, PositionEvent } from '../domain/events.ts';
import { idempotencyKeyFor, positionIdFor } from '../domain/ids.ts';
import { Decimal, convert, decimal, formatAmount } from '../domain/money.ts';
import type { Currencies } from '../domain/money.ts';
import { decideOrder } from '../domain/order.ts';
import type { OrderState } from '../domain/order.ts';
import { decidePosition } from '../domain/position.ts';
import type { FailureOf, SagaCommand, SagaContext } from '../machines/orderSaga.ts';
import { failpoint } from './failpoints.ts';
import { asTransient, PriceUnavailableError, TransientError } from './ports.ts';
import type { PriceService, SwapOutcome, SwapRequest, TradeVenue } from './ports.ts';

export interface SagaSettings {
  /**
   * How long after acceptance the swap may execute (default 30 s): the venue refuses it later
   * (`execute_before`); a saga that has not sent it by then compensates, one that has asks the
   * venue to void it.
   */
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
  /**
   * An operator cancels the saga in this run: its deadline counts as passed now, so nothing more is
   * sent and a swap of unknown outcome is voided first, exactly as past the deadline; what the
   * deadline would compensate is compensated with reason `cancelled`, and `detail` says why.
   */
  readonly cancel?: { readonly detail: string } | undefined;
}

/**
 * What running step `S` produced: events to store, one of the failures the step declares (see
 * SAGA in src/machines/orderSaga.ts), or nothing decidable yet.
 */
export type StepOutcome<S extends SagaCommand = SagaCommand> =
  | {
      readonly kind: 'append';
      /** Position events first: they get the lower ids, so the order's terminal event is last. */
      readonly position: readonly PositionEvent[];
      readonly order: readonly OrderEvent[];
    }
  | { readonly kind: 'failed'; readonly reason: FailureOf<S>; readonly detail: string }
  /** The swap's outcome is unknown and cannot be learned now (venue unreachable): try later. */
  | { readonly kind: 'suspended'; readonly detail: string };

const failed = <S extends SagaCommand>(reason: FailureOf<S>, detail: string): StepOutcome<S> => ({
  kind: 'failed',
  reason,
  detail,
});

const orderEvents = (order: readonly OrderEvent[]) => ({ kind: 'append', position: [], order }) as const;

type AcceptedTerms = Extract<OrderState, { order_id: string }>;

function termsOf(order: OrderState): AcceptedTerms {
  if (order.status === 'initial') throw new Error('The saga has no accepted order');
  return order;
}

/** The instant after which the venue must not execute the order's swap: acceptance + deadline. */
export function executeBefore(order: OrderState, deps: StepDeps): Date {
  return new Date(Date.parse(termsOf(order).accepted_at) + deps.settings.deadlineMs);
}

/**
 * The order's deadline has passed by this worker's clock. It decides only when to stop trying
 * (not to send, to ask the venue to void): never what happened, which only the venue can say.
 */
export function pastDeadline(order: OrderState, deps: StepDeps): boolean {
  if (deps.cancel) return true;
  return deps.now().getTime() > executeBefore(order, deps).getTime();
}

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

/** An answer of the outside world through its failpoint: in hand, and not yet stored. */
function priceAnswered<T>(answer: T): T {
  failpoint('saga.after-price-call');
  return answer;
}

function venueAnswered<T>(answer: T): T {
  failpoint('saga.after-venue-call');
  return answer;
}

async function quotePrice(context: SagaContext, deps: StepDeps): Promise<StepOutcome<'quotingPrice'>> {
  const order = termsOf(context.order);
  let quote;
  try {
    quote = await retrying(deps, async (signal) =>
      priceAnswered(await deps.prices.getMarketPrice(order.from_currency, order.to_currency, signal)),
    );
  } catch (error) {
    if (error instanceof PriceUnavailableError || error instanceof TransientError) {
      return failed<'quotingPrice'>('price_unavailable', error.message);
    }
    throw error;
  }
  const price = /^\d+(\.\d+)?$/.test(quote.price) ? decimal(quote.price) : undefined;
  if (!price || price.lte(0)) {
    return failed<'quotingPrice'>(
      'price_unavailable',
      `unusable price "${quote.price}" from ${quote.source}`,
    );
  }
  const age = deps.now().getTime() - Date.parse(quote.quoted_at);
  if (!(age <= deps.settings.maxQuoteAgeMs)) {
    return failed<'quotingPrice'>(
      'price_unavailable',
      `stale quote from ${quote.source}: quoted at ${quote.quoted_at}`,
    );
  }
  const target = deps.currencies.get(order.to_currency);
  if (!target) return failed<'quotingPrice'>('venue_rejected', `${order.to_currency} is no longer supported`);
  const toAmount = convert(decimal(order.from_amount), price, target);
  if (toAmount.lte(0)) {
    return failed<'quotingPrice'>(
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
    execute_before: executeBefore(order, deps).toISOString(),
  };
}

/**
 * What is wrong with an executed swap's terms: delivered less than the bound we set, or more
 * decimals than the currency has. The swap happened all the same, so it is recorded as the venue
 * did it, with these flags for operators and `npm run check`.
 */
function venueAnomalies(request: SwapRequest, toAmount: string, deps: StepDeps): string[] {
  const anomalies: string[] = [];
  const amount = decimal(toAmount);
  if (amount.lt(request.min_to_amount)) {
    anomalies.push(`to_amount ${toAmount} is below min_to_amount ${request.min_to_amount}`);
  }
  const precision = deps.currencies.get(request.to_currency)?.precision;
  if (precision !== undefined && amount.decimalPlaces() > precision) {
    anomalies.push(`to_amount ${toAmount} has more than the ${precision} decimals of ${request.to_currency}`);
  }
  return anomalies;
}

const suspended = (detail: string) => ({ kind: 'suspended', detail }) as const;

/**
 * Executes the swap, never under a new key, and learns its outcome from the venue alone.
 *
 * Before the deadline: send (on a resume, first ask whether an earlier run's request already
 * has an outcome); a call that fails leaves the outcome unknown, so the venue is asked before a
 * retry or a decision. An outcome still unknown after the retries suspends the saga.
 *
 * Past the deadline (by this worker's clock, which only decides when to stop trying): nothing is
 * sent any more, and a swap of unknown outcome is settled by `voidSwap`, atomically at the venue:
 * `voided` (it never executed and never will) compensates; `executed` completes the order, however
 * late. A venue that cannot be reached leaves the saga suspended, never compensated on a guess.
 * The request carries `execute_before`, so a request still in flight when the deadline passes is
 * refused by the venue's own clock.
 */
async function executeSwap(
  context: SagaContext,
  deps: StepDeps,
  resume: boolean,
): Promise<StepOutcome<'awaitingOutcome'>> {
  const request = swapRequest(context, deps);
  const key = request.idempotency_key;
  let outcome: SwapOutcome | undefined;
  try {
    if (resume)
      outcome = await retrying(deps, async (signal) => venueAnswered(await deps.venue.findSwap(key, signal)));
    outcome ??= await retrying(deps, async (signal) => {
      if (pastDeadline(context.order, deps)) throw new DeadlinePassed();
      try {
        return venueAnswered(await deps.venue.executeSwap(request, signal));
      } catch (error) {
        // The call may have executed: only the venue knows. Ask before retrying or deciding.
        const known = venueAnswered(
          await deps.venue.findSwap(key, AbortSignal.timeout(deps.settings.callTimeoutMs)),
        );
        if (known) return known;
        throw error;
      }
    });
  } catch (error) {
    if (!(error instanceof DeadlinePassed) && !(error instanceof TransientError)) throw error;
    if (!pastDeadline(context.order, deps)) {
      return suspended(`swap outcome unknown: ${error.message}`);
    }
  }
  if (!outcome) {
    try {
      outcome = await retrying(deps, async (signal) => venueAnswered(await deps.venue.voidSwap(key, signal)));
    } catch (error) {
      if (!(error instanceof TransientError)) throw error;
      return suspended(
        deps.cancel
          ? `cannot cancel: the swap outcome is unknown and voiding it failed: ${error.message}`
          : `the deadline passed with the swap outcome unknown, and voiding it failed: ${error.message}`,
      );
    }
  }

  switch (outcome.status) {
    case 'rejected':
      return outcome.reason === 'expired'
        ? failed<'awaitingOutcome'>('deadline_exceeded', `the venue refused the swap: ${outcome.detail}`)
        : failed<'awaitingOutcome'>(outcome.reason, outcome.detail);
    case 'voided':
      if (deps.cancel) {
        return failed<'awaitingOutcome'>(
          'cancelled',
          `${deps.cancel.detail}; the venue voided the swap at ${outcome.voided_at}`,
        );
      }
      return failed<'awaitingOutcome'>(
        'deadline_exceeded',
        `not executed within ${deps.settings.deadlineMs} ms of acceptance; the venue voided the swap at ${outcome.voided_at}`,
      );
    case 'executed': {
      const anomalies = venueAnomalies(request, outcome.to_amount, deps);
      return orderEvents(
        decideOrder(
          {
            type: 'RecordSwap',
            data: {
              tx_hash: outcome.tx_hash,
              to_amount: outcome.to_amount,
              executed_price: outcome.executed_price,
              ...(anomalies.length > 0 ? { venue_anomalies: anomalies } : {}),
            },
            now: deps.now().toISOString(),
          },
          context.order,
        ),
      );
    }
  }
}

function openPosition(context: SagaContext, deps: StepDeps): StepOutcome<'openingPosition'> {
  const order = termsOf(context.order);
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
        now: deps.now().toISOString(),
      },
      context.position,
    ),
  };
}

function startSwap(context: SagaContext, deps: StepDeps): StepOutcome<'sendingSwap'> {
  const order = termsOf(context.order);
  return orderEvents(
    decideOrder(
      {
        type: 'StartSwap',
        data: {
          idempotency_key: idempotencyKeyFor(order.order_id),
          position_id: positionIdFor(order.order_id),
        },
        now: deps.now().toISOString(),
      },
      context.order,
    ),
  );
}

function completeOrder(context: SagaContext, deps: StepDeps): StepOutcome<'completing'> {
  if (context.order.status !== 'swapped')
    throw new Error(`Cannot complete an order that is ${context.order.status}`);
  const { execution, order_id, from_amount } = context.order;
  const now = deps.now().toISOString();
  return {
    kind: 'append',
    position: decidePosition(
      {
        type: 'AddOrder',
        data: {
          order_id,
          from_amount,
          to_amount: execution.to_amount,
          executed_price: execution.executed_price,
        },
        now,
      },
      context.position,
    ),
    order: decideOrder(
      { type: 'CompleteOrder', data: { position_id: positionIdFor(order_id) }, now },
      context.order,
    ),
  };
}

function compensate(context: SagaContext, deps: StepDeps): StepOutcome<'compensating'> {
  const failure = context.failure;
  if (!failure) throw new Error('Compensating without a recorded failure');
  const now = deps.now().toISOString();
  return {
    kind: 'append',
    position:
      context.position.status === 'open'
        ? decidePosition({ type: 'ClosePosition', data: { reason: 'order_failed' }, now }, context.position)
        : [],
    order: decideOrder({ type: 'FailOrder', data: failure, now }, context.order),
  };
}

type StepHandler<S extends SagaCommand> = (
  context: SagaContext,
  deps: StepDeps,
  resume: boolean,
) => StepOutcome<S> | Promise<StepOutcome<S>>;

/**
 * The step handlers, one per step of SAGA. Each reads the saga's context, calls the ports,
 * decides events with the domain and stores nothing (the runner does); each can return only the
 * failures its step declares.
 * `resume`: the step comes from a rebuilt saga, so an earlier run may have started it.
 */
export const STEP_HANDLERS = {
  quotingPrice: (context, deps) => quotePrice(context, deps),
  openingPosition: (context, deps) => openPosition(context, deps),
  sendingSwap: (context, deps) => startSwap(context, deps),
  awaitingOutcome: (context, deps, resume) => executeSwap(context, deps, resume),
  completing: (context, deps) => completeOrder(context, deps),
  compensating: (context, deps) => compensate(context, deps),
} satisfies { readonly [S in SagaCommand]: StepHandler<S> };

/** Decides a step that needs no I/O, in line (the runner's planBatch previews these). */
export function decideStep(step: SagaCommand, context: SagaContext, deps: StepDeps): StepOutcome {
  const outcome = (STEP_HANDLERS[step] as StepHandler<SagaCommand>)(context, deps, false);
  if (outcome instanceof Promise) throw new Error(`Step ${step} needs no I/O, yet returned a promise`);
  return outcome;
}

/** Runs one step of the saga and says what came of it. */
export async function runStep(
  step: SagaCommand,
  context: SagaContext,
  deps: StepDeps,
  resume: boolean,
): Promise<StepOutcome> {
  // Each handler's own outcome is a StepOutcome<its step>, which every StepOutcome accepts.
  const handler = STEP_HANDLERS[step] as StepHandler<SagaCommand>;
  return handler(context, deps, resume);
}
