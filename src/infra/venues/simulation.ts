import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';
import { TransientError } from '../../app/ports.ts';
import { Decimal } from '../../domain/money.ts';

/**
 * Building blocks shared by the simulated price feed and venue: seeded random streams, waits that
 * honour an AbortSignal, and scripted / rate-drawn fault queues.
 */

/** A seeded source of random numbers. Draws are integers, so money math never touches a float. */
export interface RandomStream {
  /** An integer from `min` to `max`, both included. */
  int(min: number, max: number): number;
  /** A decimal in [0, 1) with nine decimal places. */
  fraction(): Decimal;
  /** A number in [0, 1), for comparing with probabilities (which are not money). */
  unit(): number;
}

const UNIT_STEPS = 1_000_000_000;

function stream(rng: RandomGenerator): RandomStream {
  const unitInt = () => uniformInt(rng, 0, UNIT_STEPS - 1);
  return {
    int: (min, max) => uniformInt(rng, min, max),
    fraction: () => new Decimal(unitInt()).div(UNIT_STEPS),
    unit: () => unitInt() / UNIT_STEPS,
  };
}

/** The streams a simulated market draws from; see {@link randomStreams}. */
export interface MarketStreams {
  readonly walk: RandomStream;
  readonly slippage: RandomStream;
  readonly feedFaults: RandomStream;
  readonly feedLatency: RandomStream;
  readonly venueFaults: RandomStream;
  readonly lookupFaults: RandomStream;
  readonly venueLatency: RandomStream;
  /** How long the venue takes to process a request after it arrives (late processing). */
  readonly venueProcessing: RandomStream;
}

/**
 * One independent stream per purpose, each a jump (2^64 draws) ahead of the previous one, so that
 * turning on a failure rate or a latency does not change the price path of the same seed.
 */
export function randomStreams(seed: number): MarketStreams {
  const base = xoroshiro128plus(seed);
  const next = () => {
    const rng = base.clone();
    base.jump();
    return stream(rng);
  };
  return {
    walk: next(),
    slippage: next(),
    feedFaults: next(),
    feedLatency: next(),
    venueFaults: next(),
    lookupFaults: next(),
    venueLatency: next(),
    // Last, so that streams added later shift none of the earlier ones.
    venueProcessing: next(),
  };
}

/** How long a simulated call takes, drawn uniformly per call. */
export interface LatencyRange {
  /** Shortest answer time in milliseconds (default 0). */
  readonly minMs?: number;
  /** Longest answer time in milliseconds (default `minMs`). */
  readonly maxMs?: number;
}

export function drawLatency(random: RandomStream, latency: LatencyRange): number {
  const min = Math.max(0, Math.floor(latency.minMs ?? 0));
  const max = Math.max(min, Math.floor(latency.maxMs ?? min));
  // Always draw, even for a fixed latency, so the number of draws per call never changes.
  return random.int(min, max);
}

function abortedError(what: string): TransientError {
  return new TransientError('timeout', `${what}: the caller gave up waiting (aborted)`);
}

/** Throws TransientError('timeout') when the caller has already given up. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortedError(what);
}

/**
 * Waits `ms` milliseconds; rejects with TransientError('timeout') as soon as `signal` aborts.
 * A zero wait takes no timer, so simulations without latency stay fast.
 */
export function wait(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortedError(what));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError(what));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Waits for `promise`, or rejects with TransientError('timeout') as soon as `signal` aborts. */
export function awaitUnlessAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  what: string,
): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortedError(what));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortedError(what));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/**
 * Never answers: rejects with TransientError('timeout') when the caller aborts, or after `maxMs`
 * for callers that set no deadline of their own.
 */
export async function hang(maxMs: number, signal: AbortSignal | undefined, what: string): Promise<never> {
  await wait(maxMs, signal, what);
  throw new TransientError('timeout', `${what}: no answer within ${maxMs} ms`);
}

/** A queue of scripted one-off behaviours, each for a number of matching calls. */
export interface Script<T, C> {
  push(entry: T, times: number, matches?: (call: C) => boolean): void;
  /** The first entry that matches `call`, used up by one; `undefined` when none matches. */
  take(call: C): T | undefined;
  clear(): void;
  readonly size: number;
}

export function script<T, C>(): Script<T, C> {
  let queue: { entry: T; remaining: number; matches: (call: C) => boolean }[] = [];
  return {
    push(entry, times, matches = () => true) {
      if (!Number.isInteger(times) || times < 1)
        throw new Error(`times must be a positive integer: ${times}`);
      queue.push({ entry, remaining: times, matches });
    },
    take(call) {
      const index = queue.findIndex((item) => item.matches(call));
      const item = queue[index];
      if (!item) return undefined;
      item.remaining -= 1;
      if (item.remaining === 0) queue.splice(index, 1);
      return item.entry;
    },
    clear() {
      queue = [];
    },
    get size() {
      return queue.length;
    },
  };
}

/** A service-wide outage: every call fails until it ends. */
export interface Outage {
  /** Starts (or extends) an outage for `calls` calls, or until {@link Outage.end} when omitted. */
  start(calls?: number): void;
  /** True when this call falls in the outage; uses one call of a counted outage. */
  consume(): boolean;
  end(): void;
  readonly active: boolean;
}

export function outage(): Outage {
  // undefined: no outage; Infinity: until restored.
  let remaining: number | undefined;
  return {
    start(calls) {
      if (calls !== undefined && (!Number.isInteger(calls) || calls < 1)) {
        throw new Error(`calls must be a positive integer: ${calls}`);
      }
      remaining = calls ?? Infinity;
    },
    consume() {
      if (remaining === undefined) return false;
      remaining -= 1;
      if (remaining <= 0) remaining = undefined;
      return true;
    },
    end() {
      remaining = undefined;
    },
    get active() {
      return remaining !== undefined;
    },
  };
}

/**
 * Picks at most one fault for a call from per-kind probabilities, with one draw per call
 * whatever the rates, so changing a rate never shifts the draws of later calls.
 */
export function drawFault<K extends string>(
  random: RandomStream,
  rates: Readonly<Partial<Record<K, number>>>,
  kinds: readonly K[],
): K | undefined {
  const draw = random.unit();
  let threshold = 0;
  for (const kind of kinds) {
    threshold += rates[kind] ?? 0;
    if (draw < threshold) return kind;
  }
  return undefined;
}

export function validateRates(rates: Readonly<Record<string, number | undefined>>): void {
  let total = 0;
  for (const [kind, rate] of Object.entries(rates)) {
    if (rate === undefined) continue;
    if (!Number.isFinite(rate) || rate < 0 || rate > 1) {
      throw new Error(`Rate of ${kind} must be a probability from 0 to 1: ${rate}`);
    }
    total += rate;
  }
  if (total > 1) throw new Error(`Fault rates add up to ${total}, more than 1`);
}

/** `FROM/TO`, the way pairs are named in options and messages. */
export function pairName(from: string, to: string): string {
  return `${from}/${to}`;
}
