import { positionIdFor } from '../domain/ids.ts';
import type { Queryable } from '../app/ports/database.ts';
import type { EventStore, StoredEvent } from '../app/ports/eventStore.ts';

/** One saga's stored events: its order's and its position's, in the order they were stored. */
export interface SagaHistory {
  readonly orderId: string;
  readonly events: readonly StoredEvent[];
}

/** Below every uuid: where the walk over all orders starts. */
const FIRST = '00000000-0000-0000-0000-000000000000';

/**
 * Reads stored sagas whole, for replaying them (`replay-check`): the open ones from `open_sagas`,
 * every one in batches by order id. A batch's streams are loaded in one query, in stored order,
 * as the runner loads one saga's.
 */
export function createSagaHistories(db: Queryable, store: EventStore) {
  async function load(orderIds: readonly string[]): Promise<SagaHistory[]> {
    if (orderIds.length === 0) return [];
    const orderOf = new Map(orderIds.flatMap((id) => [[id, id] as const, [positionIdFor(id), id] as const]));
    const events = await store.loadStreams([...orderOf.keys()]);
    const byOrder = new Map<string, StoredEvent[]>(orderIds.map((id) => [id, []]));
    for (const event of events) {
      const orderId = orderOf.get(event.aggregate_id);
      if (orderId) byOrder.get(orderId)?.push(event);
    }
    return [...byOrder].map(([orderId, history]) => ({ orderId, events: history }));
  }

  return {
    /** The sagas that have not ended (kept by a trigger in the transaction of every append). */
    async open(): Promise<SagaHistory[]> {
      const rows = await db.query<{ order_id: string }>(
        'SELECT order_id::text AS order_id FROM open_sagas ORDER BY order_id',
      );
      return load(rows.map((r) => r.order_id));
    },

    /** How many orders were ever accepted. */
    async count(): Promise<number> {
      const [row] = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM events WHERE event_type = 'OrderAccepted'`,
      );
      return row?.n ?? 0;
    },

    /**
     * Every saga ever accepted, `batchSize` at a time, in order id order: a keyset walk, so a batch
     * costs the same at the end of a large store as at its start, and nothing is held between batches.
     */
    async *all(batchSize = 1000): AsyncIterable<SagaHistory[]> {
      let after = FIRST;
      for (;;) {
        const rows = await db.query<{ id: string }>(
          `SELECT aggregate_id::text AS id FROM events
           WHERE aggregate_id > $1::uuid AND version = 1 AND event_type = 'OrderAccepted'
           ORDER BY aggregate_id LIMIT $2`,
          [after, batchSize],
        );
        if (rows.length === 0) return;
        yield await load(rows.map((r) => r.id));
        after = rows[rows.length - 1]?.id ?? after;
        if (rows.length < batchSize) return;
      }
    },
  };
}

export type SagaHistories = ReturnType<typeof createSagaHistories>;
