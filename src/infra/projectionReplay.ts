import type { Queryable } from '../app/ports/database.ts';
import { differingFields, replay } from '../app/projections.ts';
import type { ProjectionInput } from '../app/projections.ts';
import { EVENT_COLUMNS, toStored } from './eventStore.ts';
import type { EventRow } from './eventStore.ts';
import { loadRange, VIEW_TABLES } from './viewTables.ts';
import type { ViewKind, ViewOf } from './viewTables.ts';

/** A read-model row that is not what a replay of the events gives. */
export interface ReadModelDifference {
  readonly view: string;
  readonly id: string;
  readonly problem: string;
}

export interface ReadModelComparison {
  readonly events: number;
  readonly rows: { readonly orders: number; readonly positions: number };
  readonly differenceCount: number;
  /** The first `sample` differences. */
  readonly differences: readonly ReadModelDifference[];
}

/**
 * Compares `orders_view` and `positions_view` with a replay of every event through the
 * TypeScript fold (src/app/projections.ts): guarantee 6. Streams are read in aggregate order, a
 * batch at a time, and each batch's rows compared with the views' rows in the same id range, so
 * memory holds one batch whatever the size of the log. Run it on a quiet system (after draining):
 * an event appended meanwhile shows as a difference.
 */
export async function compareReadModels(
  db: Queryable,
  options: { readonly batchSize?: number; readonly sample?: number } = {},
): Promise<ReadModelComparison> {
  const batchSize = options.batchSize ?? 5000;
  const sample = options.sample ?? 10;
  const differences: ReadModelDifference[] = [];
  let differenceCount = 0;
  let events = 0;
  const rows = { orders: 0, positions: 0 };
  const found = (difference: ReadModelDifference) => {
    differenceCount += 1;
    if (differences.length < sample) differences.push(difference);
  };

  function compare<K extends ViewKind>(
    kind: K,
    expected: ReadonlyMap<string, ViewOf[K]>,
    actual: readonly ViewOf[K][],
  ): void {
    const { table, id } = VIEW_TABLES[kind];
    const idOf = (row: ViewOf[K]) => String((row as Record<string, unknown>)[id]);
    const stored = new Map(actual.map((row) => [idOf(row), row]));
    rows[kind] += actual.length;
    for (const [rowId, row] of expected) {
      const got = stored.get(rowId);
      if (!got) {
        found({ view: table, id: rowId, problem: `missing from ${table}` });
        continue;
      }
      const fields = differingFields(kind, row, got);
      if (fields.length > 0) {
        found({
          view: table,
          id: rowId,
          problem: `differs from a replay in ${fields
            .map(
              (f) =>
                `${f} (${JSON.stringify(got[f as keyof typeof got])}, replay ${JSON.stringify(row[f as keyof typeof row])})`,
            )
            .join(', ')}`,
        });
      }
    }
    for (const rowId of stored.keys()) {
      if (!expected.has(rowId))
        found({ view: table, id: rowId, problem: `in ${table}, but no event makes it` });
    }
  }

  /** Compares the streams of `stream` (complete) with the views' rows in (after, upTo]. */
  async function check(
    stream: readonly ProjectionInput[],
    after: string | undefined,
    upTo: string | undefined,
  ) {
    const replayed = replay(stream);
    compare('orders', replayed.orders, await loadRange(db, 'orders', after, upTo));
    compare('positions', replayed.positions, await loadRange(db, 'positions', after, upTo));
  }

  /** An event the catalogue does not accept is reported, and left out of the replay. */
  const readable = (row: EventRow): ProjectionInput[] => {
    try {
      return [toStored(row)];
    } catch (error) {
      found({ view: 'events', id: String(row.event_id), problem: (error as Error).message });
      return [];
    }
  };

  let after: string | undefined;
  let from = { aggregate_id: '00000000-0000-0000-0000-000000000000', version: 0 };
  /** The last stream of a batch may go on in the next: it waits for it. */
  let carried: ProjectionInput[] = [];
  for (;;) {
    const batch = await db.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events
       WHERE (events.aggregate_id, events.version) > ($1::uuid, $2::int)
       ORDER BY events.aggregate_id, events.version
       LIMIT $3`,
      [from.aggregate_id, from.version, batchSize],
    );
    events += batch.length;
    const stream = [...carried, ...batch.flatMap(readable)];
    const lastRow = batch.at(-1);
    if (batch.length < batchSize || !lastRow) {
      await check(stream, after, undefined);
      break;
    }
    from = { aggregate_id: String(lastRow.aggregate_id), version: Number(lastRow.version) };
    const lastId = from.aggregate_id.toLowerCase();
    const firstOfLast = stream.findIndex((e) => e.aggregate_id.toLowerCase() === lastId);
    const complete = firstOfLast < 0 ? stream : stream.slice(0, firstOfLast);
    carried = firstOfLast < 0 ? [] : stream.slice(firstOfLast);
    const upTo = complete.at(-1)?.aggregate_id.toLowerCase();
    if (upTo !== undefined) {
      await check(complete, after, upTo);
      after = upTo;
    }
  }
  return { events, rows, differenceCount, differences };
}
