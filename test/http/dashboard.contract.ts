import { randomUUID } from 'node:crypto';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrderFeed } from '../../src/app/orderFeed.ts';
import type { FeedBatch, OrderFeed } from '../../src/app/orderFeed.ts';
import type { Database } from '../../src/app/ports/database.ts';
import type { OrderView } from '../../src/app/projections.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createOrderFeedRows } from '../../src/infra/orderFeed.ts';
import { testApp } from '../helpers/app.ts';
import { aCatalogueEvent } from '../helpers/messages.ts';
import { until } from '../helpers/wait.ts';

/** One message of the stream, with when it arrived. */
interface Message {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: FeedBatch;
  readonly at: number;
}

/** Reads an SSE response as it arrives; `stop()` lets the stream go. */
export function readStream(res: Response) {
  const messages: Message[] = [];
  const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  const done = (async () => {
    for (;;) {
      const { value, done: finished } = await reader.read().catch(() => ({ value: '', done: true }));
      if (finished) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const field = (name: string) =>
          block
            .split('\n')
            .filter((line) => line.startsWith(`${name}: `))
            .map((line) => line.slice(name.length + 2));
        const data = field('data');
        if (data.length === 0) continue;
        messages.push({
          event: field('event')[0] ?? 'message',
          id: field('id')[0],
          data: JSON.parse(data.join('\n')) as FeedBatch,
          at: performance.now(),
        });
      }
    }
  })();
  return {
    messages,
    ids: () => new Set(messages.flatMap((m) => m.data.orders.map((o) => o.order_id))),
    orders: () => messages.flatMap((m) => m.data.orders),
    async stop() {
      await reader.cancel();
      await done;
    },
  };
}

const order = (user: string, amount = '10') => ({
  method: 'POST',
  body: JSON.stringify({
    user_id: user,
    from_amount: amount,
    from_currency: 'USDT',
    to_currency: 'BTC',
    order_type: 'market',
  }),
  headers: { 'content-type': 'application/json' },
});

export async function place(app: Hono, user: string, headers: Record<string, string> = {}): Promise<string> {
  const init = order(user);
  const res = await app.request('/orders', { ...init, headers: { ...init.headers, ...headers } });
  expect(res.status).toBe(202);
  return ((await res.json()) as { order_id: string }).order_id;
}

/**
 * The dashboard's live feed and list on one database: `open` gives a migrated database of the
 * test's own (the feed reads every user's changes), closed by the returned function.
 */
export function dashboardFeedContract(
  database: string,
  open: () => Promise<{ db: Database; close(): Promise<void> }>,
): void {
  describe(`the dashboard feed on ${database}`, () => {
    let close: () => Promise<void>;
    let db: Database;
    let feed: OrderFeed;
    let app: Hono;

    beforeAll(async () => {
      const opened = await open();
      db = opened.db;
      close = () => opened.close();
      const rows = createOrderFeedRows(db);
      feed = createOrderFeed({ rows, logger: silentLogger });
      app = testApp(db, { dashboard: { rows, feed } });
    });
    afterAll(async () => {
      await feed.stop();
      await close();
    });

    describe('when 200 orders a second are placed', () => {
      it('sends every order in one message per 250 ms tick at most', async () => {
        const stream = readStream(await app.request('/ui/stream/orders'));
        await until(() => stream.messages.length > 0, 'the first message (the counts)');
        const user = `burst-${randomUUID()}`;
        const placed: string[] = [];
        const started = performance.now();
        // 200 a second for 2 s: 10 every 50 ms, each batch sent together.
        for (let tick = 0; tick < 40; tick += 1) {
          const due = started + tick * 50;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          placed.push(...(await Promise.all(Array.from({ length: 10 }, () => place(app, user)))));
        }
        await until(
          () => placed.every((id) => stream.ids().has(id)) || undefined,
          'every order in the feed',
          10_000,
        );
        const elapsed = performance.now() - started;
        await stream.stop();

        const batches = stream.messages.filter((m) => m.data.orders.length > 0);
        // At most one message per tick (plus the first one, which carries the counts only).
        expect(stream.messages.length).toBeLessThanOrEqual(Math.ceil(elapsed / 250) + 2);
        const gaps = batches.slice(1).map((m, i) => m.at - (batches[i]?.at ?? 0));
        expect(Math.min(...gaps)).toBeGreaterThanOrEqual(200);
        // Batched: a tick carries the orders of many requests.
        expect(Math.max(...batches.map((m) => m.data.orders.length))).toBeGreaterThanOrEqual(20);
        // Each order once per version.
        const seen = stream.orders().map((o) => `${o.order_id}@${o.version}`);
        expect(new Set(seen).size).toBe(seen.length);
      });
    });

    describe('when a client reconnects with Last-Event-ID', () => {
      it('first gets what changed while it was away', async () => {
        const user = `resume-${randomUUID()}`;
        const first = readStream(await app.request(`/ui/stream/orders?user=${user}`));
        const before = await place(app, user);
        const seen = await until(
          () => first.messages.find((m) => m.data.orders.some((o) => o.order_id === before)),
          'the first order',
        );
        await first.stop();

        // Away: a new order, and the first one moves on.
        const missed = await place(app, user);
        await createEventStore(db).append([
          {
            aggregate_id: before,
            aggregate_type: 'order',
            expected_version: 1,
            events: [aCatalogueEvent(before, 'PriceQuoted')],
          },
        ]);

        const again = readStream(
          await app.request(`/ui/stream/orders?user=${user}`, {
            headers: { 'Last-Event-ID': seen.id ?? '' },
          }),
        );
        const catchUp = await until(() => again.messages[0], 'the catch-up message');
        await again.stop();
        const byId = new Map(catchUp.data.orders.map((o) => [o.order_id, o]));
        expect(byId.get(missed)?.status).toBe('pending');
        expect(byId.get(before)).toMatchObject({ status: 'processing', version: 2 });
        expect(catchUp.data.counts).toEqual({ pending: 1, processing: 1, completed: 0, failed: 0 });
      });

      it('refuses an event id it never sent', async () => {
        const res = await app.request('/ui/stream/orders', { headers: { 'Last-Event-ID': 'yesterday' } });
        expect(res.status).toBe(400);
        expect(((await res.json()) as { errors: unknown[] }).errors).toEqual([
          { field: 'since', message: expect.stringMatching(/an event id this stream sent/) as unknown },
        ]);
      });
    });

    describe('when every order is listed a page at a time', () => {
      it('pages newest first with the filters, never repeating a row', async () => {
        const user = `pages-${randomUUID()}`;
        const ids: string[] = [];
        for (let i = 0; i < 5; i += 1) ids.push(await place(app, user));
        const pages: OrderView[][] = [];
        let cursor: string | null = null;
        do {
          const query: string = `/admin/orders?user=${user}&status=pending&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
          const body = (await (await app.request(query)).json()) as {
            orders: OrderView[];
            next_cursor: string | null;
          };
          pages.push(body.orders);
          cursor = body.next_cursor;
        } while (cursor);
        expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
        const listed = pages.flat();
        // Every order once, newest first; two placed within the same millisecond tie on created_at
        // and come in order_id order, as the keyset does.
        expect(listed.map((o) => o.order_id).sort()).toEqual([...ids].sort());
        const newestFirst = [...listed].sort(
          (a, b) => b.created_at.localeCompare(a.created_at) || b.order_id.localeCompare(a.order_id),
        );
        expect(listed.map((o) => o.order_id)).toEqual(newestFirst.map((o) => o.order_id));
      });
    });
  });
}
