import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { RequestProblem } from './problems.ts';

export interface RateLimit {
  /** Orders a user may place per second (a fixed one-second window per user). */
  readonly perSecond: number;
  /** Orders above that a user may place in bursts, per 10 s (0: none). */
  readonly burst: number;
}

/** Window of the burst allowance, in seconds. */
export const BURST_WINDOW_S = 10;

/**
 * A per-user limit kept in this process's memory (rate-limiter-flexible): N processes behind a
 * load balancer let a user through N times as often. `take(user)` throws a 429 problem
 * `rate_limited` with `Retry-After` (whole seconds, at least 1) when the user is over the limit.
 */
export function perUserRateLimit(limit: RateLimit) {
  const perSecond = new RateLimiterMemory({ keyPrefix: 'orders', points: limit.perSecond, duration: 1 });
  const limiter =
    limit.burst > 0
      ? new BurstyRateLimiter(
          perSecond,
          new RateLimiterMemory({ keyPrefix: 'orders-burst', points: limit.burst, duration: BURST_WINDOW_S }),
        )
      : perSecond;
  return {
    async take(userId: string): Promise<void> {
      try {
        await limiter.consume(userId);
      } catch (error) {
        if (!(error instanceof RateLimiterRes)) throw error;
        const seconds = Math.max(1, Math.ceil(error.msBeforeNext / 1000));
        throw new RequestProblem(
          429,
          'rate_limited',
          'Too many orders',
          `User ${userId} may place at most ${limit.perSecond} orders per second` +
            (limit.burst > 0 ? ` (and ${limit.burst} more per ${BURST_WINDOW_S} s in bursts)` : '') +
            `; retry in ${seconds} s`,
          { headers: { 'Retry-After': String(seconds) } },
        );
      }
    },
  };
}
