import type { Consumer, EventMessage } from '../../app/messages.ts';
import type { Database } from '../db/port.ts';
import type { Logger } from '../logger.ts';

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
}

type OutboxRow = EventMessage & { readonly id: string };

/**
 * The embedded default's relay and bus in one: reads unpublished outbox rows, hands each to the
 * consumers of its type, and marks it published only once every one of them has handled it.
 *
 * Delivery is at least once, like the broker's: a crash before the mark leaves the row
 * unpublished, so it is delivered again at the next start and consumers deduplicate. A failed
 * delivery is retried with backoff without holding up the rows behind it.
 */
export function createInProcessDelivery(options: InProcessDeliveryOptions) {
  const pollIntervalMs = options.pollIntervalMs ?? 100;
  const concurrency = options.concurrency ?? 128;
  const minDelay = options.retryMinDelayMs ?? 100;
  const maxDelay = options.retryMaxDelayMs ?? 5_000;
  const { db, logger } = options;

  /** Rows being handled or waiting for a retry: never claimed twice. */
  const held = new Set<string>();
  const handling = new Set<Promise<void>>();
  const attempts = new Map<string, number>();
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

  function retryLater(row: OutboxRow, error: unknown): void {
    const attempt = (attempts.get(row.id) ?? 0) + 1;
    attempts.set(row.id, attempt);
    const delay = Math.min(maxDelay, minDelay * 2 ** (attempt - 1));
    logger.warn(
      { err: error, event_id: row.event_id, event_type: row.event_type, attempt, delay },
      'delivery failed; will retry',
    );
    const timer = setTimeout(() => {
      retryTimers.delete(timer);
      held.delete(row.id);
      wake();
    }, delay);
    retryTimers.add(timer);
  }

  async function deliver(row: OutboxRow): Promise<void> {
    const { id: _id, ...message } = row;
    const results = await Promise.allSettled(consumersOf(row.event_type).map((c) => c.handle(message)));
    const failure = results.find((r) => r.status === 'rejected');
    if (failure) return retryLater(row, failure.reason);
    attempts.delete(row.id);
    markPublished(row.id);
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
      logger.error({ err: error }, 'outbox relay could not read the outbox; retrying on the next poll');
    } finally {
      pumping = false;
    }
  }

  /** Looks at the outbox now (called after every append, so the saga starts without waiting). */
  function wake(): void {
    if (!stopped) void pump();
  }

  return {
    wake,
    start(): void {
      stopped = false;
      poller = setInterval(wake, pollIntervalMs);
      wake();
    },
    /** Stops claiming, lets in-flight deliveries finish and their rows be marked. */
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(poller);
      for (const timer of retryTimers) clearTimeout(timer);
      retryTimers.clear();
      while (handling.size > 0) await Promise.allSettled([...handling]);
      await marking;
      await flushMarks();
    },
    /** Messages being handled right now. */
    get inFlight(): number {
      return handling.size;
    },
  };
}

export type InProcessDelivery = ReturnType<typeof createInProcessDelivery>;
