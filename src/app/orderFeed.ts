import type { Logger } from './ports/logger.ts';
import type { OrderCounts, OrderFeedRows } from './ports/orderFeed.ts';
import type { OrderView } from './projections.ts';

/**
 * The dashboard's live feed: one poller per process, however many browsers watch. Every tick
 * (250 ms) it reads the rows of `orders_view` that changed since the last tick (one indexed
 * statement, nothing per order) and hands each watcher one batch with every change it may see.
 * Nothing runs while nobody watches.
 *
 * A row's updated_at is its transaction's start, so a transaction that commits late shows a time
 * before rows already read: each read reaches `overlapMs` back and drops the versions already
 * sent. Clients apply a row only when its version is newer than the one they hold, so a batch
 * seen twice (a reconnect's catch-up racing a tick) changes nothing.
 */

/** One tick's changes, for one watcher. */
export interface FeedBatch {
  /** Where the feed stands after this batch (the newest updated_at read): a reconnect resumes here. */
  readonly cursor: string | undefined;
  /** The rows that changed, oldest change first; each at its newest version. */
  readonly orders: readonly OrderView[];
  /** Counts by status of what the watcher may see, when they changed since its last batch. */
  readonly counts?: OrderCounts | undefined;
  /** More rows changed than one batch carries: reload the list instead of patching it. */
  readonly truncated?: boolean;
}

export interface FeedWatcher {
  /** Only this user's orders (a user's key, or an admin's filter); every user's when undefined. */
  readonly userId?: string | undefined;
  send(batch: FeedBatch): void;
  /** The feed stops (the process shuts down): end the stream. */
  close(): void;
}

export interface OrderFeed {
  /** Starts sending batches to `watcher`; the returned function stops. */
  watch(watcher: FeedWatcher): () => void;
  /**
   * The changes a watcher missed since `cursor` (a reconnect's Last-Event-ID), with the counts;
   * `truncated` when there are more than a batch carries.
   */
  since(cursor: string, userId: string | undefined): Promise<FeedBatch>;
  /**
   * Where a new watcher starts: no rows, the counts of `userId`'s orders (or of every user's), and
   * the database's clock as the cursor, so that a reconnect resumes from there.
   */
  start(userId: string | undefined): Promise<FeedBatch>;
  /** Ends every stream and stops polling. */
  stop(): Promise<void>;
}

export interface OrderFeedOptions {
  readonly rows: OrderFeedRows;
  readonly logger: Logger;
  /** How often the feed reads (and so the most batches a watcher gets a second: 4). */
  readonly tickMs?: number;
  /** How far back each read reaches for transactions that committed late. */
  readonly overlapMs?: number;
  /** The most rows one batch carries (a tick of 200 orders/s carries a few hundred). */
  readonly maxRows?: number;
  /** Counts are read again at most this often, and only when something changed. */
  readonly countEveryMs?: number;
}

const ALL = '\u0000all';
const scopeOf = (userId: string | undefined) => userId ?? ALL;

export function createOrderFeed(options: OrderFeedOptions): OrderFeed {
  const { rows, logger } = options;
  const tickMs = options.tickMs ?? 250;
  const overlapMs = options.overlapMs ?? 1000;
  const maxRows = options.maxRows ?? 2000;
  const countEveryMs = options.countEveryMs ?? 2000;

  const watchers = new Set<FeedWatcher>();
  /** Versions already sent, by order id, with the row's updated_at (to forget them in time). */
  const sent = new Map<string, { version: number; updatedAt: string }>();
  /** The counts per scope, when read, and whether a change in the scope came since. */
  const counted = new Map<string, { counts: OrderCounts; at: number; stale: boolean }>();
  let cursor: string | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  async function countsOf(scope: string): Promise<OrderCounts> {
    const counts = await rows.counts(scope === ALL ? undefined : scope);
    counted.set(scope, { counts, at: Date.now(), stale: false });
    return counts;
  }

  async function tick(): Promise<void> {
    const found = await rows.changedSince({ since: cursor, overlapMs, limit: maxRows + 1 });
    const truncated = found.length > maxRows;
    const fresh: OrderView[] = [];
    for (const row of found.slice(0, maxRows)) {
      const known = sent.get(row.order_id);
      if (known && known.version >= row.version) continue;
      sent.set(row.order_id, { version: row.version, updatedAt: row.updated_at });
      fresh.push(row);
      if (cursor === undefined || row.updated_at > cursor) cursor = row.updated_at;
    }
    if (cursor !== undefined) {
      const forgetBefore = new Date(Date.parse(cursor) - overlapMs).toISOString();
      for (const [id, entry] of sent) if (entry.updatedAt < forgetBefore) sent.delete(id);
    }
    for (const row of fresh) {
      const own = counted.get(row.user_id);
      if (own) own.stale = true;
    }
    const all = counted.get(ALL);
    if (all && fresh.length > 0) all.stale = true;

    // The counts of each scope watched, read again when they changed and are old enough.
    const newCounts = new Map<string, OrderCounts>();
    const scopes = new Set([...watchers].map((w) => scopeOf(w.userId)));
    for (const scope of scopes) {
      const entry = counted.get(scope);
      if (entry && (!entry.stale || Date.now() - entry.at < countEveryMs)) continue;
      newCounts.set(scope, await countsOf(scope));
    }
    for (const scope of counted.keys()) if (!scopes.has(scope)) counted.delete(scope);

    for (const watcher of watchers) {
      const scope = scopeOf(watcher.userId);
      const orders = watcher.userId === undefined ? fresh : fresh.filter((r) => r.user_id === watcher.userId);
      const counts = newCounts.get(scope);
      if (orders.length === 0 && counts === undefined && !truncated) continue;
      watcher.send({ cursor, orders, counts, ...(truncated ? { truncated } : {}) });
    }
  }

  function schedule(): void {
    if (stopped || timer !== undefined || watchers.size === 0) return;
    timer = setTimeout(() => {
      running = tick()
        .catch((error: unknown) => logger.warn({ err: error }, 'order feed: reading the changes failed'))
        .finally(() => {
          timer = undefined;
          running = undefined;
          schedule();
        });
    }, tickMs);
  }

  return {
    watch(watcher) {
      if (stopped) {
        watcher.close();
        return () => {};
      }
      watchers.add(watcher);
      schedule();
      return () => {
        watchers.delete(watcher);
        if (watchers.size === 0) {
          // Nobody watches: stop reading, and start afresh (from now) when someone does.
          if (timer !== undefined && running === undefined) clearTimeout(timer);
          if (running === undefined) timer = undefined;
          sent.clear();
          counted.clear();
          cursor = undefined;
        }
      };
    },
    async since(from, userId) {
      const found = await rows.changedSince({ since: from, overlapMs, limit: maxRows + 1, userId });
      const orders = found.slice(0, maxRows);
      return {
        cursor: orders.reduce<string>((max, r) => (r.updated_at > max ? r.updated_at : max), from),
        orders,
        counts: await rows.counts(userId),
        ...(found.length > maxRows ? { truncated: true } : {}),
      };
    },
    async start(userId) {
      return { cursor: await rows.now(), orders: [], counts: await rows.counts(userId) };
    },
    async stop() {
      stopped = true;
      if (timer !== undefined && running === undefined) clearTimeout(timer);
      await running;
      for (const watcher of watchers) watcher.close();
      watchers.clear();
    },
  };
}
