import type { Logger } from '../logger.ts';
import { backoffDelay } from './deliveryPolicy.ts';

/**
 * What the buses do while something they depend on (the database, the broker) is down: wait
 * longer after each failure, and say so in a few log lines rather than one per try or message.
 */

/**
 * A run of consecutive failures of one kind (the database unreachable, the broker gone) and the
 * wait it calls for: `minMs` after the first failure, doubling up to `maxMs`, nothing once a try
 * succeeds. The relays pause on it instead of retrying at every poll or wake-up, so an outage
 * costs a few attempts and a few log lines, not hundreds a second.
 */
export function createBackoff(minMs: number, maxMs: number) {
  let failures = 0;
  let retryAt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** Timers may fire a little early: `then` runs only once the wait is really over. */
  const whenDue = (then: () => void) => {
    const left = retryAt - Date.now();
    if (left > 0) timer = setTimeout(whenDue, left, then);
    else then();
  };
  return {
    /** Records a failure; returns how long to wait before the next try. */
    fail(): number {
      failures += 1;
      const delay = backoffDelay(failures, minMs, maxMs);
      retryAt = Date.now() + delay;
      return delay;
    },
    /** Records a success; returns true when it ends a run of failures (worth a log line). */
    succeed(): boolean {
      const ended = failures > 0;
      failures = 0;
      retryAt = 0;
      return ended;
    },
    /** Ends the current wait early (something showed the other side is back); failures stay counted. */
    retryNow(): void {
      retryAt = 0;
    },
    /** Calls `then` once the current wait is over, instead of any call asked for before. */
    whenOver(then: () => void): void {
      clearTimeout(timer);
      timer = setTimeout(whenDue, Math.max(0, retryAt - Date.now()), then);
    },
    /** Drops the call asked for with whenOver (on stop). */
    cancel(): void {
      clearTimeout(timer);
    },
    /** Failures since the last success. */
    get failures(): number {
      return failures;
    },
    /** Milliseconds left of the current wait; 0 when a try may go ahead. */
    get remainingMs(): number {
      return Math.max(0, retryAt - Date.now());
    },
  };
}

/**
 * A database outage as a consumer lives it. The log gets one warning when the first delivery
 * fails for want of the database and one line when a delivery gets through again: during an
 * outage every message in hand fails at each of its retries, and a line for each (tens a second)
 * would bury the log, so those go to debug. Messages waiting out a backoff for the database can
 * wait on `over`, which the first delivery that gets through ends: they go at once, instead of
 * up to a full backoff after the database is back.
 */
export function createDatabaseOutage(logger: Logger) {
  let since: number | undefined;
  let failed = 0;
  let ended = new AbortController();
  return {
    /** A delivery failed because the database is unreachable; it will be retried. */
    failed(err: unknown, context: Record<string, unknown>): void {
      failed += 1;
      if (since !== undefined) {
        logger.debug({ err, ...context }, 'delivery waits for the database');
        return;
      }
      since = Date.now();
      ended = new AbortController();
      logger.warn({ err, ...context }, 'the database is unreachable; messages wait for it and are retried');
    },
    /** A delivery succeeded: ends the outage, if one was going on. */
    succeeded(): void {
      if (since === undefined) return;
      logger.info(
        { outage_ms: Date.now() - since, failed_deliveries: failed },
        'the database answers again; delivering',
      );
      since = undefined;
      failed = 0;
      ended.abort();
    },
    /** Aborted when the current outage ends. */
    get over(): AbortSignal {
      return ended.signal;
    },
  };
}
