import type { Consumer } from '../../app/messages.ts';
import { failpoint } from '../../app/failpoints.ts';
import { NO_METRICS } from '../../app/ports/metrics.ts';
import type { Metrics } from '../../app/ports/metrics.ts';
import type { OutboxRow } from './outboxRow.ts';
import { isDatabaseUnavailable } from '../db/port.ts';
import type { Database } from '../../app/ports/database.ts';
import type { Logger } from '../logger.ts';
import { createBackoff, createDatabaseOutage } from './outage.ts';
import { admit, backoffDelay, DEFAULT_DELIVERY_LIMIT, failureVerdict } from './deliveryPolicy.ts';
import type { DeadLetterReason } from './deliveryPolicy.ts';
import { aboutOrder, handleTraced } from './messageTracing.ts';

export interface InProcessDeliveryOptions {
  readonly db: Database;
  readonly logger: Logger;
  readonly consumers: readonly Consumer[];
  /** Fallback poll when no append woke the relay (default 100 ms). */
  readonly pollIntervalMs?: number;
  /** Messages handled at once (default 128); also the claim size. */
  readonly concurrency?: number;
  /** Backoff after a failed delivery: doubles from min to max (defaults 100 ms, 5 s). */
  readonly retryMinDelayMs?: number;
  readonly retryMaxDelayMs?: number;
  /**
   * Pause after the outbox could not be read (the database unreachable): doubles from min to max
   * (defaults 100 ms, 2 s) while it keeps failing, instead of a try and a log line at every poll.
   */
  readonly databaseRetryMinDelayMs?: number;
  readonly databaseRetryMaxDelayMs?: number;
  /**
   * Deliveries of one message to one consumer that may fail transiently before it is
   * dead-lettered (default 5, the broker queues' limit). RetryLaterError does not count.
   */
  readonly deliveryLimit?: number;
  /** Counts deliveries, redeliveries and dead letters (none when unset). */
  readonly metrics?: Metrics;
}

/** Where a row's delivery stands while it is retried (kept in memory: a restart starts afresh). */
interface Progress {
  /** Consumers that handled the row or dead-lettered it: not handed it again. */
  readonly settled: Set<string>;
  /** Transient failures per consumer, counted against the delivery limit. */
  readonly failures: Map<string, number>;
  /** Failed deliveries of any kind: the backoff grows with them. */
  retries: number;
}

const DEAD_LETTER_SQL = `
INSERT INTO dead_letters (consumer, event_id, event_type, aggregate_id, message, reason, error, attempts)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8)
ON CONFLICT (event_id, consumer) DO NOTHING`;

/**
 * The embedded default's relay and bus in one: reads unpublished outbox rows, hands each to the
 * consumers of its type, and marks it published only once every one of them has handled it.
 *
 * The same contract as the RabbitMQ consumer (see deliveryPolicy.ts): delivery is at least once,
 * like the broker's: a crash before the mark leaves the row unpublished, so it is delivered again
 * at the next start and consumers deduplicate. Each row is validated (messageSchema) before a
 * handler sees it; an invalid row or a PoisonMessageError goes to the `dead_letters` table at
 * once, a transient failure is retried with backoff up to the delivery limit and then
 * dead-lettered with its last error, a RetryLaterError is retried without limit. A dead-lettered
 * row counts as handled for that consumer, so the row is marked and nothing loops. A failed
 * delivery is retried without holding up the rows behind it.
 */
export function createInProcessDelivery(options: InProcessDeliveryOptions) {
  const pollIntervalMs = options.pollIntervalMs ?? 100;
  const concurrency = options.concurrency ?? 128;
  const minDelay = options.retryMinDelayMs ?? 100;
  const maxDelay = options.retryMaxDelayMs ?? 5_000;
  const deliveryLimit = options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT;
  const { db, logger } = options;
  const database = createBackoff(
    options.databaseRetryMinDelayMs ?? 100,
    options.databaseRetryMaxDelayMs ?? 2_000,
  );
  const outage = createDatabaseOutage(logger);
  const metrics = options.metrics ?? NO_METRICS;

  /**
   * Rows being handled or waiting for a retry: never claimed twice. Emptied by stop(), so that
   * the next start claims a row whose retry the stop cancelled.
   */
  const held = new Set<string>();
  const handling = new Set<Promise<void>>();
  const progress = new Map<string, Progress>();
  const retryTimers = new Set<ReturnType<typeof setTimeout>>();
  const toMark: string[] = [];
  let marking: Promise<void> | null = null;
  let pumping = false;
  let again = false;
  let stopped = true;
  let poller: ReturnType<typeof setInterval> | undefined;

  const consumersOf = (type: string) => options.consumers.filter((c) => c.eventTypes.includes(type));

  async function flushMarks(): Promise<void> {
    while (toMark.length > 0) {
      const ids = toMark.splice(0, toMark.length);
      // Every consumer has handled these rows (the in-process "confirm"); they are not marked yet.
      failpoint('relay.after-confirm');
      try {
        await db.query(
          'UPDATE outbox SET published = TRUE, published_at = now() WHERE id = ANY($1::bigint[])',
          [ids],
        );
      } catch (error) {
        logger.error(
          { err: error, rows: ids.length },
          'marking outbox rows published failed; they will be redelivered',
        );
      }
      for (const id of ids) held.delete(id);
    }
  }

  function scheduleMarks(): void {
    marking ??= flushMarks().finally(() => {
      marking = null;
      if (toMark.length > 0) scheduleMarks();
    });
  }

  function markPublished(id: string): void {
    toMark.push(id);
    scheduleMarks();
  }

  function retryLater(row: OutboxRow, p: Progress): void {
    // Stopping: the row stays unpublished and the next start delivers it again.
    if (stopped) return;
    p.retries += 1;
    const delay = backoffDelay(p.retries, minDelay, maxDelay);
    const timer = setTimeout(() => {
      retryTimers.delete(timer);
      held.delete(row.id);
      wake();
    }, delay);
    retryTimers.add(timer);
  }

  async function deadLetter(
    consumer: Consumer,
    row: OutboxRow,
    verdict: { readonly reason: DeadLetterReason; readonly error: string },
    attempts: number,
  ): Promise<void> {
    const { id: _id, ...message } = row;
    await db.query(DEAD_LETTER_SQL, [
      consumer.name,
      row.event_id,
      row.event_type,
      row.aggregate_id,
      JSON.stringify(message),
      verdict.reason,
      verdict.error,
      attempts,
    ]);
    metrics.deadLettered(consumer.name);
    logger.error(
      { consumer: consumer.name, event_id: row.event_id, event_type: row.event_type, ...verdict, attempts },
      'message dead-lettered',
    );
  }

  /** Hands the row to one consumer; resolves to true once that consumer is done with it. */
  function deliverTo(consumer: Consumer, row: OutboxRow, p: Progress): Promise<boolean> {
    const correlation = (row.metadata as { correlation_id?: unknown } | null)?.correlation_id;
    return aboutOrder(correlation, row.event_id, () => deliverOnce(consumer, row, p));
  }

  async function deliverOnce(consumer: Consumer, row: OutboxRow, p: Progress): Promise<boolean> {
    const attempt = (p.failures.get(consumer.name) ?? 0) + 1;
    try {
      const { id: _id, ...raw } = row;
      metrics.delivered(consumer.name, p.retries > 0);
      const admitted = admit(consumer, raw);
      await handleTraced(admitted, consumer.name, undefined, () =>
        consumer.handle(admitted, { redelivered: p.retries > 0 }),
      );
      outage.succeeded();
      return true;
    } catch (error) {
      const verdict = failureVerdict(error, attempt, deliveryLimit);
      if (verdict.action === 'retry') p.failures.set(consumer.name, attempt);
      if (verdict.action !== 'dead-letter') {
        const context = { consumer: consumer.name, event_id: row.event_id, attempt, retry: verdict.action };
        // The database down fails every row in hand: logged once per outage.
        if (isDatabaseUnavailable(error)) outage.failed(error, context);
        else logger.warn({ err: error, ...context }, 'delivery failed; will retry');
        return false;
      }
      try {
        await deadLetter(consumer, row, verdict, attempt);
        return true;
      } catch (failure) {
        logger.error({ err: failure, event_id: row.event_id }, 'recording a dead letter failed; will retry');
        return false;
      }
    }
  }

  async function deliver(row: OutboxRow): Promise<void> {
    // Most rows are handled at the first delivery: their progress is only kept once one fails.
    const before = progress.get(row.id);
    const pending = consumersOf(row.event_type).filter((c) => !before?.settled.has(c.name));
    const p = before ?? { settled: new Set<string>(), failures: new Map<string, number>(), retries: 0 };
    const done = await Promise.all(pending.map((c) => deliverTo(c, row, p)));
    if (done.every(Boolean)) {
      progress.delete(row.id);
      markPublished(row.id);
      return;
    }
    pending.forEach((c, i) => {
      if (done[i]) p.settled.add(c.name);
    });
    progress.set(row.id, p);
    retryLater(row, p);
  }

  /** Oldest first; `outbox.id`, not the ::text alias, so the partial index serves the order. */
  async function claim(limit: number): Promise<OutboxRow[]> {
    return db.query<OutboxRow>(
      `SELECT id::text AS id, event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata
       FROM outbox
       WHERE NOT published AND NOT (id = ANY($1::bigint[]))
       ORDER BY outbox.id
       LIMIT $2`,
      [[...held], limit],
    );
  }

  async function pump(): Promise<void> {
    if (pumping) {
      again = true;
      return;
    }
    pumping = true;
    try {
      do {
        again = false;
        const room = concurrency - handling.size;
        if (stopped || room <= 0) break;
        const rows = await claim(room);
        if (database.succeed()) logger.info('the outbox can be read again; delivering');
        // Stopped while claiming: the rows stay unpublished for the next start.
        if (stopped) break;
        for (const row of rows) {
          held.add(row.id);
          if (consumersOf(row.event_type).length === 0) {
            markPublished(row.id);
            continue;
          }
          const task = deliver(row).finally(() => {
            handling.delete(task);
            wake();
          });
          handling.add(task);
        }
        if (rows.length === room) again = true;
      } while (again);
    } catch (error) {
      const delay = database.fail();
      logger.error(
        { err: error, attempt: database.failures, delay },
        'in-process delivery could not read the outbox; retrying after a pause',
      );
      database.whenOver(wake);
    } finally {
      pumping = false;
    }
  }

  /** Looks at the outbox now, unless a database backoff lasts. */
  function wake(): void {
    if (!stopped && database.remainingMs === 0) void pump();
  }

  return {
    /**
     * Looks at the outbox now: called after every committed append, so a saga starts without
     * waiting for the next poll. The append shows the database answers: a backoff pause ends.
     */
    wake: (): void => {
      database.retryNow();
      wake();
    },
    start(): void {
      if (!stopped) return;
      stopped = false;
      database.succeed();
      poller = setInterval(wake, pollIntervalMs);
      wake();
    },
    /**
     * Stops claiming, lets in-flight deliveries finish and their rows be marked. Rows waiting for
     * a retry stay unpublished and are released: the next start delivers them again.
     */
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(poller);
      database.cancel();
      for (const timer of retryTimers) clearTimeout(timer);
      retryTimers.clear();
      while (handling.size > 0) await Promise.allSettled([...handling]);
      progress.clear();
      await marking;
      await flushMarks();
      held.clear();
    },
    /** Messages being handled right now. */
    get inFlight(): number {
      return handling.size;
    },
  };
}

export type InProcessDelivery = ReturnType<typeof createInProcessDelivery>;
