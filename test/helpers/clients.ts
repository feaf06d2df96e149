import { setTimeout as sleep } from 'node:timers/promises';
import type { Queryable } from '../../src/app/ports/database.ts';
import { until } from './wait.ts';

export interface RetryingClients {
  /** The order ids accepted so far (202), one per key. */
  readonly ids: Set<string>;
  /** Per Idempotency-Key, the order id its 202 named (as verifyRun takes the clients' answers). */
  readonly answers: Map<string, string[]>;
  /** Every answer's status, counted: 202, 503, … */
  readonly statuses: Record<string, number>;
  /** The Retry-After headers of the 503 answers. */
  readonly retryAfter: Set<string | null>;
  /** Resolves once every order was accepted (or the clients were stopped). */
  readonly done: Promise<void>;
  /** The clients give up: for a test's clean-up when it failed half-way. */
  stop(): void;
}

/**
 * `clients` concurrent clients submit `count` orders to `POST {url}/orders`, each with an
 * Idempotency-Key of its own, as careful clients of a money-moving API do: on any answer but 202,
 * or no answer, they wait 100 ms and send the same order with the same key again.
 */
export function submitRetrying(
  url: string,
  options: {
    readonly count: number;
    readonly clients: number;
    /** The body of order `i`, asked once per order (retries send the same). */
    readonly order: (i: number) => object;
  },
): RetryingClients {
  const ids = new Set<string>();
  const answers = new Map<string, string[]>();
  const statuses: Record<string, number> = {};
  const retryAfter = new Set<string | null>();
  let next = 0;
  let stopped = false;
  const client = async () => {
    while (next < options.count && !stopped) {
      const i = next++;
      const body = JSON.stringify(options.order(i));
      const key = `order-${i}`;
      while (!stopped) {
        const res = await fetch(`${url}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body,
        }).catch(() => undefined);
        const status = res ? String(res.status) : 'no answer';
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (res?.status === 503) retryAfter.add(res.headers.get('retry-after'));
        if (res?.status === 202) {
          const id = ((await res.json()) as { order_id: string }).order_id;
          ids.add(id);
          answers.set(key, [...(answers.get(key) ?? []), id]);
          break;
        }
        await res?.body?.cancel();
        await sleep(100);
      }
    }
  };
  const done = Promise.all(Array.from({ length: options.clients }, client)).then(() => undefined);
  return {
    ids,
    answers,
    statuses,
    retryAfter,
    done,
    stop() {
      stopped = true;
    },
  };
}

/** Waits until every one of `orderIds` has its terminal event (OrderCompleted or OrderFailed). */
export async function ordersEnded(
  db: Queryable,
  orderIds: Iterable<string>,
  timeoutMs = 60_000,
): Promise<void> {
  const ids = [...orderIds];
  await until(
    async () => {
      const [row] = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM events
         WHERE event_type IN ('OrderCompleted', 'OrderFailed') AND aggregate_id = ANY($1::uuid[])`,
        [ids],
      );
      return row?.n === ids.length;
    },
    `${ids.length} orders to end`,
    timeoutMs,
  );
}
