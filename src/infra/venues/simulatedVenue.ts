import { createHash } from 'node:crypto';
import { TransientError } from '../../app/ports.ts';
import type { SwapOutcome, SwapRejection, SwapRequest, TradeVenue } from '../../app/ports.ts';
import { convert, Decimal, formatAmount } from '../../domain/money.ts';
import type { MarketModel } from './marketModel.ts';
import { PRICE_SIGNIFICANT_DIGITS } from './marketModel.ts';
import {
  awaitUnlessAborted,
  drawFault,
  drawLatency,
  hang,
  outage,
  pairName,
  script,
  throwIfAborted,
  validateRates,
  wait,
} from './simulation.ts';
import type { LatencyRange } from './simulation.ts';

/**
 * What a scripted or rate-drawn venue call does instead of answering:
 * - `error`: TransientError('error') after its latency; nothing executed;
 * - `timeout`: the request never arrives: no answer until the caller aborts (or `hangMs`), then
 *   TransientError('timeout'); nothing executed;
 * - `lost_answer`: the swap EXECUTES and is recorded, then the answer is lost:
 *   TransientError('lost_answer'); `findSwap` reveals the execution;
 * - `outage`: TransientError('outage') at once; as a rate, the venue stays down (findSwap too)
 *   for `outageCalls` calls.
 *
 * Independently of faults, a request may be processed late ({@link SimulatedVenueOptions.processingDelay},
 * {@link SimulatedVenue.delayNext}): it is received at once and decided N ms later, whether or not
 * its caller still waits, as a request queued at a busy venue. It is refused (`expired`) if it
 * arrives or is processed after its `execute_before` by the venue's clock, and answers `voided` if
 * its key was voided meanwhile.
 */
export type VenueFault = 'error' | 'timeout' | 'lost_answer' | 'outage';

/** Per-call probabilities (0..1, drawn from the seed) of faults on executeSwap. */
export interface VenueRates {
  readonly error?: number;
  readonly timeout?: number;
  readonly lost_answer?: number;
  /** Probability that a call starts an outage of `outageCalls` calls. */
  readonly outage?: number;
}

/** Per-call probabilities of faults on findSwap (a lookup has no answer to lose). */
export interface LookupRates {
  readonly error?: number;
  readonly timeout?: number;
}

const RATE_KINDS = ['error', 'timeout', 'lost_answer', 'outage'] as const;
const LOOKUP_RATE_KINDS = ['error', 'timeout'] as const;

export interface LiquidityOptions {
  /** Largest order per pair, as the USD value of from_amount (default `'1000000'`). */
  readonly defaultUsd?: string;
  /** Limits for particular pairs, keyed `FROM/TO` (the reverse pair shares a limit unless set). */
  readonly pairs?: Readonly<Record<string, string>>;
}

export interface SlippageOptions {
  /** Largest random adverse move of the executed price, as a fraction (default `'0.0005'`, 5 bp). */
  readonly random?: string;
  /**
   * Extra adverse move for an order as large as the pair's liquidity, scaled linearly with
   * size (default `'0.01'`: an order of half the liquidity slips 0.5 % more).
   */
  readonly sizeImpact?: string;
}

export interface SimulatedVenueOptions {
  /** Liquidity limits; an order above its pair's limit is rejected `insufficient_liquidity`. */
  readonly liquidity?: LiquidityOptions;
  /** How far the executed price falls below the market price. */
  readonly slippage?: SlippageOptions;
  /** Answer time of executeSwap and findSwap (default 0 ms). */
  readonly latency?: LatencyRange;
  /** Fault rates of executeSwap (default none). */
  readonly rates?: VenueRates;
  /** Fault rates of findSwap and voidSwap (default none). */
  readonly lookupRates?: LookupRates;
  /**
   * Time from a request's arrival to its processing (default 0: decided on arrival). A request
   * being processed has no outcome yet: findSwap answers `undefined` for it.
   */
  readonly processingDelay?: LatencyRange;
  /** How long a `timeout` hangs for a caller that passes no AbortSignal (default 10 s). */
  readonly hangMs?: number;
  /** How many calls an outage drawn by `rates.outage` lasts, the drawing call included (default 5). */
  readonly outageCalls?: number;
}

export interface VenueFaultOptions {
  /** How many matching calls the fault applies to (default 1). */
  readonly times?: number;
  /** Which operation it hits (default `executeSwap`). */
  readonly call?: 'executeSwap' | 'findSwap' | 'voidSwap';
  /** Only calls for this idempotency key; default any key. */
  readonly key?: string;
}

export interface RejectOptions {
  /** How many new swaps are rejected (default 1). */
  readonly times?: number;
  /** Only the swap with this idempotency key; default any. */
  readonly key?: string;
  /** The rejection's detail (default names the simulation). */
  readonly detail?: string;
}

/** One executed swap, as the venue booked it. */
export interface LedgerEntry {
  readonly idempotency_key: string;
  readonly from_currency: string;
  readonly to_currency: string;
  readonly from_amount: string;
  readonly to_amount: string;
  /** The market price at execution, before slippage. */
  readonly market_price: string;
  readonly executed_price: string;
  readonly min_to_amount: string;
  readonly tx_hash: string;
  readonly executed_at: string;
}

export interface VenueCalls {
  readonly executeSwap: number;
  readonly findSwap: number;
  readonly voidSwap: number;
}

/** The simulated venue: a TradeVenue plus its switches and its ledger. */
export interface SimulatedVenue extends TradeVenue {
  /** Scripts the next matching call(s) to fail; scripts queue in order. */
  failNext(kind: VenueFault, options?: VenueFaultOptions): void;
  /** Rejects the next new swap(s) with `reason`, executing nothing (the answer is kept per key). */
  rejectNext(reason: SwapRejection, options?: RejectOptions): void;
  /** Processes the next matching new request(s) `ms` after they arrive (late processing). */
  delayNext(ms: number, options?: { readonly times?: number; readonly key?: string }): void;
  setProcessingDelay(delay: LatencyRange): void;
  /** Resolves once every request received so far has been processed. */
  settled(): Promise<void>;
  /** What the venue holds for a key: its final outcome, `pending` while processing, or nothing. */
  recorded(idempotencyKey: string): SwapOutcome | 'pending' | undefined;
  /** Every call, findSwap included, fails with TransientError('outage') for `calls` calls or until {@link restore}. */
  startOutage(options?: { readonly calls?: number }): void;
  /** Ends an outage and drops scripted faults and rejections (rates and settings stay). */
  restore(): void;
  setRates(rates: VenueRates): void;
  setLookupRates(rates: LookupRates): void;
  setLatency(latency: LatencyRange): void;
  /** Sets the liquidity limit (USD) of a pair `FROM/TO`. */
  setLiquidity(pair: string, usd: string): void;
  /** Every executed swap in execution order. */
  ledger(): readonly LedgerEntry[];
  /** How many times a key was executed: 0 or 1, never more. */
  executions(idempotencyKey: string): number;
  /** Calls received, failed ones included. */
  calls(): VenueCalls;
}

const DECIMAL = /^\d+(\.\d+)?$/;

function decimalOption(text: string, what: string): Decimal {
  if (!DECIMAL.test(text)) throw new Error(`${what} must be a non-negative decimal: ${text}`);
  return new Decimal(text);
}

function positiveOption(text: string, what: string): Decimal {
  const value = decimalOption(text, what);
  if (value.lte(0)) throw new Error(`${what} must be greater than zero: ${text}`);
  return value;
}

function usd(value: Decimal): string {
  return value.toFixed(2, Decimal.ROUND_DOWN);
}

/** A venue that executes swaps at the market model's walked price, with faults on demand. */
export function createSimulatedVenue(
  market: MarketModel,
  options: SimulatedVenueOptions = {},
): SimulatedVenue {
  const hangMs = options.hangMs ?? 10_000;
  if (!Number.isFinite(hangMs) || hangMs < 0)
    throw new Error(`hangMs must be a non-negative number: ${hangMs}`);
  const outageCalls = options.outageCalls ?? 5;
  const defaultLiquidity = positiveOption(options.liquidity?.defaultUsd ?? '1000000', 'liquidity.defaultUsd');
  const liquidity = new Map<string, Decimal>();
  for (const [pair, limit] of Object.entries(options.liquidity?.pairs ?? {})) {
    liquidity.set(pair, positiveOption(limit, `liquidity of ${pair}`));
  }
  const randomSlippage = decimalOption(options.slippage?.random ?? '0.0005', 'slippage.random');
  const sizeImpact = decimalOption(options.slippage?.sizeImpact ?? '0.01', 'slippage.sizeImpact');
  let latency: LatencyRange = options.latency ?? {};
  let rates: VenueRates = options.rates ?? {};
  let lookupRates: LookupRates = options.lookupRates ?? {};
  let processingDelay: LatencyRange = options.processingDelay ?? {};
  validateRates({ ...rates });
  validateRates({ ...lookupRates });

  type Call = { readonly call: 'executeSwap' | 'findSwap' | 'voidSwap'; readonly key: string };
  const faults = script<VenueFault, Call>();
  const delays = script<number, string>();
  /** Requests received and not yet processed, by key: a repeat joins the first. */
  const pending = new Map<string, Promise<SwapOutcome>>();
  const rejections = script<{ reason: SwapRejection; detail: string | undefined }, string>();
  const down = outage();
  const outcomes = new Map<string, SwapOutcome>();
  const entries: LedgerEntry[] = [];
  const executed = new Map<string, number>();
  let executeCalls = 0;
  let findCalls = 0;
  let voidCalls = 0;

  function limitOf(from: string, to: string): Decimal {
    return liquidity.get(pairName(from, to)) ?? liquidity.get(pairName(to, from)) ?? defaultLiquidity;
  }

  function reject(request: SwapRequest, reason: SwapRejection, detail: string): SwapOutcome {
    return { status: 'rejected', idempotency_key: request.idempotency_key, reason, detail };
  }

  /** Decides a new swap and books it; runs once per key. */
  function decide(request: SwapRequest): SwapOutcome {
    const { from_currency: from, to_currency: to } = request;
    const forced = rejections.take(request.idempotency_key);
    if (forced) return reject(request, forced.reason, forced.detail ?? `Rejected by the simulated venue`);

    const fromCurrency = market.currencies.get(from);
    const toCurrency = market.currencies.get(to);
    const fromUsd = market.usdPrice(from);
    const marketPrice = market.price(from, to);
    if (!fromCurrency || !toCurrency || !fromUsd || !marketPrice) {
      return reject(request, 'venue_rejected', `The venue does not trade ${pairName(from, to)}`);
    }
    if (!DECIMAL.test(request.from_amount) || new Decimal(request.from_amount).lte(0)) {
      return reject(
        request,
        'venue_rejected',
        `from_amount must be a positive decimal: ${request.from_amount}`,
      );
    }
    const amount = new Decimal(request.from_amount);
    if (amount.decimalPlaces() > fromCurrency.precision) {
      return reject(
        request,
        'venue_rejected',
        `from_amount ${request.from_amount} has more than ${fromCurrency.precision} decimals of ${from}`,
      );
    }
    if (!DECIMAL.test(request.min_to_amount)) {
      return reject(request, 'venue_rejected', `min_to_amount must be a decimal: ${request.min_to_amount}`);
    }

    // The order moves the market whether or not it fills, like any order that reaches a book.
    market.step();
    const value = amount.times(fromUsd);
    const limit = limitOf(from, to);
    if (value.gt(limit)) {
      return reject(
        request,
        'insufficient_liquidity',
        `Order worth ${usd(value)} USD exceeds the ${limit.toFixed()} USD liquidity of ${pairName(from, to)}`,
      );
    }
    const slip = market.random.slippage
      .fraction()
      .times(randomSlippage)
      .plus(value.div(limit).times(sizeImpact));
    const executedPrice = marketPrice
      .times(new Decimal(1).minus(slip))
      .toSignificantDigits(PRICE_SIGNIFICANT_DIGITS, Decimal.ROUND_DOWN);
    const toAmount = convert(amount, executedPrice, toCurrency);
    const minimum = new Decimal(request.min_to_amount);
    if (toAmount.lt(minimum)) {
      return reject(
        request,
        'slippage_exceeded',
        `Would deliver ${formatAmount(toAmount)} ${to} at ${formatAmount(executedPrice)}, ` +
          `below the minimum of ${request.min_to_amount} ${to}`,
      );
    }
    if (toAmount.lte(0)) {
      return reject(request, 'venue_rejected', `Order too small: it would deliver 0 ${to}`);
    }

    const entry: LedgerEntry = {
      idempotency_key: request.idempotency_key,
      from_currency: from,
      to_currency: to,
      from_amount: request.from_amount,
      to_amount: formatAmount(toAmount),
      market_price: formatAmount(marketPrice),
      executed_price: formatAmount(executedPrice),
      min_to_amount: request.min_to_amount,
      tx_hash: `0x${createHash('sha256').update(`${market.seed}:${request.idempotency_key}`).digest('hex')}`,
      executed_at: market.now().toISOString(),
    };
    entries.push(entry);
    executed.set(request.idempotency_key, (executed.get(request.idempotency_key) ?? 0) + 1);
    return {
      status: 'executed',
      idempotency_key: entry.idempotency_key,
      tx_hash: entry.tx_hash,
      to_amount: entry.to_amount,
      executed_price: entry.executed_price,
      executed_at: entry.executed_at,
    };
  }

  /** Refuses a request whose execute_before has passed by the venue's clock (or is unreadable). */
  function expired(request: SwapRequest, at: 'received' | 'processed'): SwapOutcome | undefined {
    const before = Date.parse(request.execute_before);
    if (Number.isNaN(before)) {
      return reject(
        request,
        'venue_rejected',
        `execute_before must be an ISO-8601 time: ${request.execute_before}`,
      );
    }
    const now = market.now();
    if (now.getTime() <= before) return undefined;
    return reject(
      request,
      'expired',
      `${at === 'received' ? 'Received' : 'Processed'} at ${now.toISOString()}, after execute_before ${request.execute_before}`,
    );
  }

  /** Decides a request once per key, unless the key was voided or the request expired meanwhile. */
  function settle(request: SwapRequest, at: 'received' | 'processed'): SwapOutcome {
    const key = request.idempotency_key;
    const known = outcomes.get(key);
    if (known) return known;
    const outcome = expired(request, at) ?? decide(request);
    outcomes.set(key, outcome);
    return outcome;
  }

  /**
   * Receives a request: its key's outcome when known, the pending processing when one is under
   * way, otherwise the request is decided now or, with a processing delay, later. The whole of
   * dedup: one decision per key, ever.
   */
  function receive(request: SwapRequest): Promise<SwapOutcome> {
    const key = request.idempotency_key;
    const known = outcomes.get(key);
    if (known) return Promise.resolve(known);
    const inProgress = pending.get(key);
    if (inProgress) return inProgress;
    // Drawn for every new request, so a script never shifts the seeded sequence.
    const drawn = drawLatency(market.random.venueProcessing, processingDelay);
    const delay = delays.take(key) ?? drawn;
    const refused = expired(request, 'received');
    if (refused || delay <= 0) {
      const outcome = refused ?? settle(request, 'received');
      outcomes.set(key, outcome);
      return Promise.resolve(outcome);
    }
    const processing = wait(delay, undefined, `Processing of swap ${key}`).then(() => {
      pending.delete(key);
      return settle(request, 'processed');
    });
    pending.set(key, processing);
    return processing;
  }

  function downError(what: string): TransientError {
    return new TransientError('outage', `${what}: the venue is down (outage)`);
  }

  /**
   * The start of a findSwap or voidSwap call: an aborted caller or an outage fails it at once;
   * otherwise the fault it meets (scripted, else drawn at the lookup rates) and its latency.
   */
  function lookupFault(
    call: 'findSwap' | 'voidSwap',
    key: string,
    signal: AbortSignal | undefined,
    what: string,
  ) {
    throwIfAborted(signal, what);
    if (down.consume()) throw downError(what);
    // Both draws happen on every call so that scripts never shift the seeded sequence.
    const drawn = drawFault(market.random.lookupFaults, lookupRates, LOOKUP_RATE_KINDS);
    const ms = drawLatency(market.random.venueLatency, latency);
    return { fault: faults.take({ call, key }) ?? drawn, ms };
  }

  /**
   * A findSwap or voidSwap call: fails as its fault says, or answers `answer()`, decided on
   * arrival. A lost answer loses only the reply: what the call did at the venue stands.
   */
  async function lookupCall<T>(
    call: 'findSwap' | 'voidSwap',
    key: string,
    signal: AbortSignal | undefined,
    what: string,
    answer: () => T,
  ): Promise<T> {
    const { fault, ms } = lookupFault(call, key, signal, what);
    switch (fault) {
      case 'outage':
        throw downError(what);
      case 'timeout':
        return hang(hangMs, signal, what);
      case 'error':
        await wait(ms, signal, what);
        throw new TransientError('error', `${what}: the venue failed (simulated error)`);
      case 'lost_answer':
      case undefined: {
        const outcome = answer();
        await wait(ms, signal, what);
        if (fault === 'lost_answer')
          throw new TransientError('lost_answer', `${what}: the venue's answer was lost (simulated)`);
        return outcome;
      }
    }
  }

  return {
    async executeSwap(request, signal) {
      executeCalls += 1;
      const what = `Swap ${request.idempotency_key}`;
      throwIfAborted(signal, what);
      if (down.consume()) throw downError(what);
      // Both draws happen on every call so that scripts never shift the seeded sequence.
      const drawn = drawFault(market.random.venueFaults, rates, RATE_KINDS);
      const ms = drawLatency(market.random.venueLatency, latency);
      const fault = faults.take({ call: 'executeSwap', key: request.idempotency_key }) ?? drawn;
      switch (fault) {
        case 'outage':
          if (drawn === 'outage' && outageCalls > 1) down.start(outageCalls - 1);
          throw downError(what);
        case 'timeout':
          return hang(hangMs, signal, what);
        case 'error':
          await wait(ms, signal, what);
          throw new TransientError('error', `${what}: the venue failed before executing (simulated error)`);
        case 'lost_answer':
          // Received: it is processed whatever becomes of the answer.
          void receive(request);
          await wait(ms, signal, what);
          throw new TransientError('lost_answer', `${what}: the venue's answer was lost (simulated)`);
        case undefined: {
          // Received at once and processed whether or not the caller still waits, so a caller that
          // gives up meets a swap that may execute: the ambiguity a real timeout has.
          const outcome = await awaitUnlessAborted(receive(request), signal, what);
          await wait(ms, signal, what);
          return outcome;
        }
      }
    },
    findSwap(idempotencyKey, signal) {
      findCalls += 1;
      return lookupCall('findSwap', idempotencyKey, signal, `Lookup of swap ${idempotencyKey}`, () =>
        outcomes.get(idempotencyKey),
      );
    },
    voidSwap(idempotencyKey, signal) {
      voidCalls += 1;
      // Atomic at the venue: a key not yet decided (never received, or still being processed) is
      // voided now, and its pending request will find it so.
      return lookupCall('voidSwap', idempotencyKey, signal, `Void of swap ${idempotencyKey}`, () => {
        let outcome = outcomes.get(idempotencyKey);
        if (!outcome) {
          outcome = {
            status: 'voided',
            idempotency_key: idempotencyKey,
            voided_at: market.now().toISOString(),
          };
          outcomes.set(idempotencyKey, outcome);
        }
        return outcome;
      });
    },
    failNext(kind, faultOptions = {}) {
      const { call = 'executeSwap', key } = faultOptions;
      faults.push(
        kind,
        faultOptions.times ?? 1,
        (c) => c.call === call && (key === undefined || c.key === key),
      );
    },
    rejectNext(reason, rejectOptions = {}) {
      const { key } = rejectOptions;
      rejections.push(
        { reason, detail: rejectOptions.detail },
        rejectOptions.times ?? 1,
        key === undefined ? undefined : (k) => k === key,
      );
    },
    delayNext(ms, delayOptions = {}) {
      if (!Number.isFinite(ms) || ms < 0) throw new Error(`delay must be a non-negative number: ${ms}`);
      const { key } = delayOptions;
      delays.push(ms, delayOptions.times ?? 1, key === undefined ? undefined : (k) => k === key);
    },
    setProcessingDelay(next) {
      processingDelay = next;
    },
    async settled() {
      while (pending.size > 0) await Promise.all(pending.values());
    },
    recorded: (key) => outcomes.get(key) ?? (pending.has(key) ? 'pending' : undefined),
    startOutage(outageOptions = {}) {
      down.start(outageOptions.calls);
    },
    restore() {
      down.end();
      faults.clear();
      rejections.clear();
      delays.clear();
    },
    setRates(next) {
      validateRates({ ...next });
      rates = next;
    },
    setLookupRates(next) {
      validateRates({ ...next });
      lookupRates = next;
    },
    setLatency(next) {
      latency = next;
    },
    setLiquidity(pair, limit) {
      liquidity.set(pair, positiveOption(limit, `liquidity of ${pair}`));
    },
    ledger: () => [...entries],
    executions: (key) => executed.get(key) ?? 0,
    calls: () => ({ executeSwap: executeCalls, findSwap: findCalls, voidSwap: voidCalls }),
  };
}
