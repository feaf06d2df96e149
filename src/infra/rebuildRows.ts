import type { Queryable } from '../app/ports/database.ts';
import type { ViewRows } from '../app/projections.ts';
import { loadRows, upsertRows, VIEW_TABLES } from './viewTables.ts';
import type { ViewKind, ViewOf } from './viewTables.ts';

export const KINDS: readonly ViewKind[] = ['orders', 'positions'];

/** The table a rebuild fills before it is swapped in for `kind`'s live one. */
export const next = (kind: ViewKind) => `${VIEW_TABLES[kind].table}_next`;

/** The id of a read-model row. */
const idOf = (kind: ViewKind, row: ViewOf[ViewKind]): string =>
  kind === 'orders' ? (row as ViewOf['orders']).order_id : (row as ViewOf['positions']).position_id;

/**
 * The rebuilt rows a rebuild holds in memory, most recently touched last, at most `max` of them:
 * rows leave (written if changed) oldest first. The new tables have no other writer, so a row in
 * memory is always the latest.
 */
export function rowCache(max: number) {
  const rows: ViewRows = { orders: new Map(), positions: new Map() };
  const maps: { readonly [K in ViewKind]: Map<string, ViewOf[ViewKind]> } = rows;
  const dirty = { orders: new Set<string>(), positions: new Set<string>() };
  const size = () => rows.orders.size + rows.positions.size;

  /** Writes these rows of `kind` if they changed; how many were written. */
  async function write(q: Queryable, kind: ViewKind, ids: Iterable<string>): Promise<number> {
    const changed = [...ids].filter((id) => dirty[kind].has(id));
    const written = changed.flatMap((id) => maps[kind].get(id) ?? []);
    await upsertRows(q, kind, written, next(kind));
    for (const id of changed) dirty[kind].delete(id);
    return written.length;
  }

  return {
    rows,
    /** Brings the rows of these ids into memory, as the most recently touched. */
    async load(q: Queryable, touched: { readonly [K in ViewKind]: ReadonlySet<string> }): Promise<void> {
      for (const kind of KINDS) {
        const map = maps[kind];
        const missing: string[] = [];
        for (const id of touched[kind]) {
          const row = map.get(id);
          if (row === undefined) {
            missing.push(id);
          } else {
            map.delete(id);
            map.set(id, row);
          }
        }
        for (const row of await loadRows(q, kind, missing, next(kind))) map.set(idOf(kind, row), row);
      }
    },
    /** Notes a row the fold changed. */
    changed: (kind: ViewKind, id: string): void => {
      dirty[kind].add(id);
    },
    /** Writes (if changed) and forgets the oldest rows beyond `max`; how many rows were written. */
    async evict(q: Queryable): Promise<number> {
      const total = size();
      const excess = total - max;
      if (excess <= 0) return 0;
      const shares = KINDS.map((kind) => Math.ceil((excess * maps[kind].size) / total));
      let written = 0;
      for (const [i, kind] of KINDS.entries()) {
        const share = shares[i] ?? 0;
        const oldest: string[] = [];
        for (const id of maps[kind].keys()) {
          if (oldest.length >= share) break;
          oldest.push(id);
        }
        written += await write(q, kind, oldest);
        for (const id of oldest) maps[kind].delete(id);
      }
      return written;
    },
    /** Writes every changed row (they stay in memory); how many rows were written. */
    async flush(q: Queryable): Promise<number> {
      let written = 0;
      for (const kind of KINDS) written += await write(q, kind, [...dirty[kind]]);
      return written;
    },
  };
}
