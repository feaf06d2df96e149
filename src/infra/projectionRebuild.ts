import { failpoint } from '../app/failpoints.ts';
import type { Database, Queryable } from '../app/ports/database.ts';
import { START } from '../app/ports/eventStore.ts';
import type { GlobalPosition, StoredEvent } from '../app/ports/eventStore.ts';
import { foldInto, viewOf } from '../app/projections.ts';
import { databaseErrorInfo } from './db/port.ts';
import { EVENT_COLUMNS, toStored } from './eventStore.ts';
import type { EventRow } from './eventStore.ts';
import { KINDS, rowCache } from './rebuildRows.ts';
import { VIEW_TABLES } from './viewTables.ts';
import type { ViewKind } from './viewTables.ts';

/*
 * `rebuild-projections`: the read models rebuilt from the event log by the TypeScript fold
 * (src/app/projections.ts) into new tables, swapped in while the service keeps appending.
 *
 * 1. New tables `<view>_next`, shaped like the live ones (columns, checks, primary key).
 * 2. Copy: every event in commit-safe order (transaction_id, id), a batch at a time, reading only
 *    transactions older than every one still running, so no event can commit behind the cursor.
 *    The fold works on rows held in memory, at most `cachedRows` of them (rebuildRows.ts): those
 *    a batch touches that are not there are loaded from the new tables, and rows are written
 *    when they leave memory. Memory is bounded whatever the size of the log.
 * 3. The live tables' other indexes on the new ones, ANALYZE, and a catch-up of what committed
 *    meanwhile.
 * 4. The rows in which the live tables differ from the rebuilt ones, compared while appends go on.
 * 5. One transaction: lock `events` against appends (they wait), apply the last events, compare
 *    again the rows that differed and those the events since touched (the trigger changed no
 *    others), drop the live tables and rename the new ones in. Appends resume, and their trigger
 *    writes the new tables.
 */

export interface RebuildProgress {
  readonly phase: 'copy' | 'catch-up' | 'swap';
  readonly eventsRead: number;
  /** Events in the log when the rebuild started (more may come). */
  readonly totalEvents: number;
}

export interface RebuildReport {
  readonly eventsRead: number;
  /** Row writes into the new tables (a row written again, after it left memory, counts again). */
  readonly rowsWritten: number;
  /** Rows in the rebuilt tables. */
  readonly rows: { readonly orders: number; readonly positions: number };
  /** Rows in which the live tables differed from the rebuilt ones (missing, extra or changed). */
  readonly rowsDiffered: number;
  /** Up to ten of them. */
  readonly differed: readonly { readonly view: string; readonly id: string }[];
  /** How long appends waited for the swap (the lock on `events` was held), in milliseconds. */
  readonly lockedMs: number;
  /** Tries it took to get that lock (each waits at most half a second, appends going on between). */
  readonly swapAttempts: number;
  /** Events the fold did not apply: out of version order (0 in a healthy log). */
  readonly skippedEvents: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
}

export interface RebuildOptions {
  /** Events per batch (default 5000). */
  readonly batchSize?: number;
  readonly onProgress?: (progress: RebuildProgress) => void;
  /** Runs after the catch-up, before the swap: lets tests append while the rebuild is underway. */
  readonly beforeSwap?: () => Promise<void>;
  /**
   * Rows kept in memory between batches (default 50,000): an order's events lie a few batches
   * apart, so most are folded from memory and written once, when they leave it.
   */
  readonly cachedRows?: number;
}

/** How long the swap waits for its lock on `events` before it lets appends through and tries again. */
const LOCK_TIMEOUT_MS = 500;
const LOCK_NOT_AVAILABLE = '55P03';

interface IndexInfo {
  readonly name: string;
  readonly definition: string;
  readonly primary: boolean;
}

async function indexesOf(q: Queryable, table: string): Promise<IndexInfo[]> {
  return q.query<IndexInfo>(
    `SELECT i.relname AS name, pg_get_indexdef(i.oid) AS definition, x.indisprimary AS primary
     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
     WHERE x.indrelid = $1::regclass ORDER BY i.relname`,
    [table],
  );
}

/** The live index's definition, on the new table and named `<name>_next`. */
function onNext(index: IndexInfo, table: string): string {
  const renamed = index.definition.replace(`INDEX ${index.name} ON `, `INDEX ${index.name}_next ON `);
  const moved = renamed.replace(new RegExp(` ON ((?:\\w+\\.)?)${table} `), ` ON $1${table}_next `);
  if (moved === renamed || renamed === index.definition) {
    throw new Error(`Cannot move index ${index.name} to ${table}_next: ${index.definition}`);
  }
  return moved;
}

/** Events after `from` in commit-safe order; `settled`: only from transactions older than any running. */
async function readEvents(
  q: Queryable,
  from: GlobalPosition,
  limit: number,
  settled: boolean,
): Promise<StoredEvent[]> {
  const rows = await q.query<EventRow>(
    `SELECT ${EVENT_COLUMNS} FROM events
     WHERE (events.transaction_id, events.id) > ($1::xid8, $2::bigint)
       ${settled ? 'AND events.transaction_id < pg_snapshot_xmin(pg_current_snapshot())' : ''}
     ORDER BY events.transaction_id, events.id
     LIMIT $3`,
    [from.transaction_id, from.id, limit],
  );
  return rows.map(toStored);
}

/** Rebuilds `orders_view` and `positions_view` from the events and swaps them in. */
export async function rebuildReadModels(db: Database, options: RebuildOptions = {}): Promise<RebuildReport> {
  const batchSize = options.batchSize ?? 5000;
  const started = performance.now();
  const [total] = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM events');
  const totalEvents = Number(total?.n ?? 0);
  let eventsRead = 0;
  let skippedEvents = 0;
  let from: GlobalPosition = START;

  const report = (phase: RebuildProgress['phase']) =>
    options.onProgress?.({ phase, eventsRead, totalEvents });

  const cache = rowCache(options.cachedRows ?? 50_000);
  let rowsWritten = 0;
  /** Once recording, the ids of every row an applied event touched (the swap compares them again). */
  const touchedSinceDiff = { orders: new Set<string>(), positions: new Set<string>() };
  let recording = false;

  /** Folds a batch into the rows (loading those not in the cache from the new tables). */
  async function apply(q: Queryable, events: readonly StoredEvent[]): Promise<void> {
    // A stream whose first event here is its first event at all has no row yet: nothing to load.
    const touched = { orders: new Set<string>(), positions: new Set<string>() };
    const created = new Set<string>();
    for (const event of events) {
      const id = event.aggregate_id.toLowerCase();
      if (recording) touchedSinceDiff[viewOf(event)].add(id);
      if (event.version === 1) created.add(id);
      else if (!created.has(id)) touched[viewOf(event)].add(id);
    }
    await cache.load(q, touched);
    skippedEvents += foldInto(cache.rows, events, cache.changed);
    rowsWritten += await cache.evict(q);
    eventsRead += events.length;
    from = events.at(-1)?.position ?? from;
  }

  /**
   * Applies batches until one comes back short: the cursor has reached what has committed. The
   * next batch is read while this one is folded and written, so the database and the fold overlap.
   */
  async function catchUp(q: Queryable, phase: RebuildProgress['phase'], settled: boolean): Promise<void> {
    let reading = readEvents(q, from, batchSize, settled);
    for (;;) {
      const events = await reading;
      const last = events.at(-1);
      const more = events.length === batchSize && last !== undefined;
      if (more) reading = readEvents(q, last.position, batchSize, settled);
      if (events.length > 0) {
        await apply(q, events);
        failpoint('projection.mid-batch');
      }
      report(phase);
      if (!more) break;
    }
    rowsWritten += await cache.flush(q);
  }

  const live = new Map<ViewKind, IndexInfo[]>();
  for (const kind of KINDS) {
    const { table } = VIEW_TABLES[kind];
    const indexes = await indexesOf(db, table);
    live.set(kind, indexes);
    // A rebuild that died leaves its tables behind: start over.
    await db.exec(`DROP TABLE IF EXISTS ${table}_next;
      CREATE TABLE ${table}_next (LIKE ${table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
    // The primary key's index now, for the writes' ON CONFLICT; the others once the rows are in.
    for (const index of indexes.filter((i) => i.primary)) await db.exec(onNext(index, table));
  }

  await catchUp(db, 'copy', true);
  for (const kind of KINDS) {
    const { table } = VIEW_TABLES[kind];
    for (const index of live.get(kind)?.filter((i) => !i.primary) ?? []) await db.exec(onNext(index, table));
    await db.exec(`ANALYZE ${table}_next`);
  }
  await catchUp(db, 'catch-up', true);
  await options.beforeSwap?.();
  await catchUp(db, 'catch-up', true);

  // The rows that differ now, compared without holding appends; under the lock only these and
  // the rows the last events touch are compared again (the trigger changes no others), so the
  // pause does not grow with the size of the tables.
  const differing = { orders: new Set<string>(), positions: new Set<string>() };
  recording = true;
  for (const kind of KINDS) {
    const { table, id } = VIEW_TABLES[kind];
    const rows = await db.query<{ id: string }>(
      `SELECT coalesce(o.${id}, n.${id})::text AS id
       FROM ${table} o FULL JOIN ${table}_next n ON n.${id} = o.${id}
       WHERE ROW(o.*) IS DISTINCT FROM ROW(n.*)`,
    );
    for (const row of rows) differing[kind].add(row.id);
  }

  // What came in meanwhile, so that little is left to do while appends wait.
  await catchUp(db, 'catch-up', true);

  let lockedAt = 0;
  const swap = () =>
    db.transaction(async (tx) => {
      // SHARE conflicts with the ROW EXCLUSIVE every append takes on `events` before its trigger
      // runs: appends in flight finish first, new ones wait for the commit, and none holds a lock
      // on a read model meanwhile (no deadlock with the DROP below). Appends queue behind a waiting
      // LOCK too, so it waits briefly and is tried again after a catch-up rather than stall them
      // behind whatever holds `events` (a long transaction, a vacuum).
      await tx.exec(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT_MS}ms'`);
      await tx.query('LOCK TABLE events IN SHARE MODE');
      await tx.exec('SET LOCAL lock_timeout = 0');
      lockedAt = performance.now();
      await catchUp(tx, 'swap', false);
      let rowsDiffered = 0;
      const differed: { view: string; id: string }[] = [];
      const rows = { orders: 0, positions: 0 };
      for (const kind of KINDS) {
        const { table, id } = VIEW_TABLES[kind];
        const suspects = [...new Set([...differing[kind], ...touchedSinceDiff[kind]])];
        const diff = await tx.query<{ id: string }>(
          `SELECT k.id::text AS id
         FROM unnest($1::uuid[]) AS k(id)
         LEFT JOIN ${table} o ON o.${id} = k.id LEFT JOIN ${table}_next n ON n.${id} = k.id
         WHERE ROW(o.*) IS DISTINCT FROM ROW(n.*)
         ORDER BY 1`,
          [suspects],
        );
        rowsDiffered += diff.length;
        differed.push(...diff.slice(0, 10).map((d) => ({ view: table, id: d.id })));
        const [count] = await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}_next`);
        rows[kind] = count?.n ?? 0;
      }
      for (const kind of KINDS) {
        const { table } = VIEW_TABLES[kind];
        const statements = [`DROP TABLE ${table}`, `ALTER TABLE ${table}_next RENAME TO ${table}`];
        for (const index of live.get(kind) ?? []) {
          statements.push(
            index.primary
              ? `ALTER TABLE ${table} ADD CONSTRAINT ${index.name} PRIMARY KEY USING INDEX ${index.name}_next`
              : `ALTER INDEX ${index.name}_next RENAME TO ${index.name}`,
          );
        }
        await tx.exec(statements.join(';\n'));
      }
      return { rowsDiffered, differed: differed.slice(0, 10), rows };
    });
  let swapped: Awaited<ReturnType<typeof swap>> | undefined;
  let swapAttempts = 0;
  for (let attempt = 1; swapped === undefined; attempt++) {
    swapAttempts = attempt;
    try {
      swapped = await swap();
    } catch (error) {
      // Only the LOCK has a timeout, and it is the first statement: nothing was applied yet.
      if (databaseErrorInfo(error)?.code !== LOCK_NOT_AVAILABLE || attempt >= 50) throw error;
      await catchUp(db, 'catch-up', true);
    }
  }
  const lockedMs = performance.now() - lockedAt;
  report('swap');

  const seconds = (performance.now() - started) / 1000;
  return {
    eventsRead,
    rowsWritten,
    ...swapped,
    lockedMs,
    swapAttempts,
    skippedEvents,
    seconds,
    eventsPerSecond: seconds > 0 ? eventsRead / seconds : 0,
  };
}
