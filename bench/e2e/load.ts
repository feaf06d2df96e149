/**
 * The load: `POST /orders` over keep-alive HTTP connections (an undici Pool, which costs the load
 * generator far less CPU per request than fetch), either closed loop (N clients, each sending its
 * next order when the last one is answered: the service's maximum) or open loop (orders sent at
 * a target rate whatever the answers, evenly spaced or as a Poisson process).
 *
 * Orders are `clusterOrder`s: 1 in 20 is larger than the simulated liquidity and fails with
 * insufficient_liquidity, a business outcome.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { clusterOrder } from '../../test/helpers/cluster.ts';

export interface LoadResult {
  /** Order ids of the 202 answers. */
  readonly orderIds: string[];
  /** Answers other than 202, by status; transport errors by code. */
  readonly refused: Record<string, number>;
  readonly sent: number;
  readonly startedAt: number;
  readonly endedAt: number;
  /** Open loop: how far behind its schedule the generator sent an order at worst (ms). */
  readonly maxLagMs: number;
  /** Most requests in flight at once. */
  readonly maxInFlight: number;
  /**
   * Each request's time from its scheduled send (open loop) or its send (closed loop) to the
   * answer, ms: what the stored timestamps cannot show, the wait before the service accepted it.
   */
  readonly answerMs: number[];
}

export interface Load {
  closed(options: { orders: number; concurrency: number }): Promise<LoadResult>;
  open(options: { rate: number; orders: number; arrivals: 'even' | 'poisson' }): Promise<LoadResult>;
  close(): Promise<void>;
}

/**
 * A load generator for the API at `apiUrl`, ordering for `users` in turn. Order numbers go on
 * across runs, so every 20th order of the whole benchmark is a large one.
 */
export function loadGenerator(apiUrl: string, users: readonly string[], connections: number): Load {
  const pool = new Pool(apiUrl, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
  let next = 0;

  const run = () => {
    const orderIds: string[] = [];
    const answerMs: number[] = [];
    const refused: Record<string, number> = {};
    let inFlight = 0;
    let maxInFlight = 0;
    /** `since`: when the request should have gone (performance.now()). */
    const submit = async (since = performance.now()) => {
      const i = next++;
      const body = JSON.stringify(clusterOrder(i, users[i % users.length] ?? 'bench-user'));
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        const response = await pool.request({
          path: '/orders',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        if (response.statusCode === 202) {
          orderIds.push(((await response.body.json()) as { order_id: string }).order_id);
        } else {
          await response.body.text();
          refused[String(response.statusCode)] = (refused[String(response.statusCode)] ?? 0) + 1;
        }
      } catch (error) {
        const code = (error as { code?: string }).code ?? (error as Error).message;
        refused[code] = (refused[code] ?? 0) + 1;
      } finally {
        inFlight -= 1;
        answerMs.push(performance.now() - since);
      }
    };
    return { orderIds, answerMs, refused, submit, maxInFlight: () => maxInFlight };
  };

  return {
    async closed({ orders, concurrency }) {
      const r = run();
      const startedAt = Date.now();
      let sent = 0;
      const client = async () => {
        while (sent < orders) {
          sent += 1;
          await r.submit();
        }
      };
      await Promise.all(Array.from({ length: concurrency }, client));
      return { ...r, sent, startedAt, endedAt: Date.now(), maxLagMs: 0, maxInFlight: r.maxInFlight() };
    },

    async open({ rate, orders, arrivals }) {
      const r = run();
      const pending = new Set<Promise<void>>();
      const gap = () => (arrivals === 'poisson' ? -Math.log(1 - Math.random()) : 1) * (1000 / rate);
      const startedAt = Date.now();
      const t0 = performance.now();
      let due = 0;
      let maxLagMs = 0;
      for (let sent = 0; sent < orders;) {
        const now = performance.now() - t0;
        // Everything due by now goes out at once: timers fire late, the schedule is kept.
        while (sent < orders && due <= now) {
          maxLagMs = Math.max(maxLagMs, now - due);
          const request = r.submit(t0 + due);
          pending.add(request);
          void request.then(() => pending.delete(request));
          sent += 1;
          due += gap();
        }
        if (sent < orders) await sleep(Math.max(0, due - (performance.now() - t0)));
      }
      await Promise.all(pending);
      return {
        ...r,
        sent: orders,
        startedAt,
        endedAt: Date.now(),
        maxLagMs: Math.round(maxLagMs),
        maxInFlight: r.maxInFlight(),
      };
    },

    close: () => pool.close(),
  };
}
