import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { ConcurrencyError, START } from '../../src/app/ports/eventStore.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import type { EventStore, NewEvent, StoredEvent, StreamAppend } from '../../src/app/ports/eventStore.ts';
import { InvalidMessageError } from '../../src/app/messageSchema.ts';
import { countRows, newId } from '../helpers/databases.ts';
import { anEvent } from '../helpers/events.ts';

/** One stream of an append: id, type, expected version, events. */
function stream(
  aggregateId: string,
  aggregateType: 'order' | 'position',
  expectedVersion: number,
  events: readonly NewEvent[],
): StreamAppend {
  return {
    aggregate_id: aggregateId,
    aggregate_type: aggregateType,
    expected_version: expectedVersion,
    events,
  };
}

/**
 * The behaviour every event-store adapter must show. Run by one test file per adapter, so PGlite
 * and PostgreSQL are held to the same assertions.
 */
export function eventStoreContract(adapter: string, open: () => Promise<Database>): void {
  describe(`event store on ${adapter}`, () => {
    let db: Database;
    let store: EventStore;

    beforeAll(async () => {
      db = await open();
      store = createEventStore(db);
    });
    afterAll(async () => {
      await db?.close();
    });

    async function outboxFor(aggregateId: string) {
      return db.query<{
        event_id: string;
        event_type: string;
        version: number;
        event_data: unknown;
        published: boolean;
      }>(
        'SELECT event_id, event_type, version, event_data, published FROM outbox WHERE aggregate_id = $1 ORDER BY id',
        [aggregateId],
      );
    }

    describe('when a stream does not exist', () => {
      it('loads as empty', async () => {
        expect(await store.load(newId())).toEqual([]);
      });
    });

    describe('when events are appended to a new stream', () => {
      it('stores them with versions 1..n in order, and one unpublished outbox row each', async () => {
        const orderId = newId();
        const events = [
          anEvent(orderId, 'OrderAccepted', { amount: '1000.50' }),
          anEvent(orderId, 'PriceQuoted'),
        ];
        const result = await store.append([
          { aggregate_id: orderId, aggregate_type: 'order', expected_version: 0, events },
        ]);

        expect(result.status).toBe('appended');
        const loaded = await store.load(orderId);
        // What the append answers is what a load reads back, typed alike.
        expect(result.status === 'appended' && result.events).toEqual(loaded);
        expect(loaded.map((e) => [e.event_type, e.version, e.event_id])).toEqual([
          ['OrderAccepted', 1, events[0]?.event_id],
          ['PriceQuoted', 2, events[1]?.event_id],
        ]);
        expect(loaded[0]?.event_data).toEqual(events[0]?.event_data);
        expect(loaded[0]?.event_data).toMatchObject({ amount: '1000.50' });
        expect(loaded[0]?.metadata).toEqual(events[0]?.metadata);
        expect(loaded[0]?.aggregate_type).toBe('order');
        expect(Number.isNaN(Date.parse(loaded[0]?.created_at ?? ''))).toBe(false);

        const outbox = await outboxFor(orderId);
        expect(outbox).toEqual([
          {
            event_id: events[0]?.event_id,
            event_type: 'OrderAccepted',
            version: 1,
            event_data: events[0]?.event_data,
            published: false,
          },
          {
            event_id: events[1]?.event_id,
            event_type: 'PriceQuoted',
            version: 2,
            event_data: events[1]?.event_data,
            published: false,
          },
        ]);
      });

      it('continues the stream from its current version', async () => {
        const orderId = newId();
        await store.append([stream(orderId, 'order', 0, [anEvent(orderId)])]);
        await store.append([stream(orderId, 'order', 1, [anEvent(orderId, 'PriceQuoted')])]);
        expect((await store.load(orderId)).map((e) => e.version)).toEqual([1, 2]);
      });
    });

    describe('when the expected version is wrong', () => {
      it.each([
        ['behind the stream', 0],
        ['ahead of the stream, which would leave a gap', 5],
      ])(
        'raises ConcurrencyError naming stream, expected and actual (%s) and writes nothing',
        async (_, expected) => {
          const orderId = newId();
          await store.append([stream(orderId, 'order', 0, [anEvent(orderId), anEvent(orderId)])]);

          const error = await store
            .append([stream(orderId, 'order', expected, [anEvent(orderId)])])
            .catch((e: unknown) => e);

          expect(error).toBeInstanceOf(ConcurrencyError);
          expect(error).toMatchObject({ stream: orderId, expected, actual: 2, code: 'conflict' });
          expect((error as Error).message).toBe(
            `Wrong expected version: ${expected} (stream: ${orderId}, stream version: 2)`,
          );
          expect(await countRows(db, 'events', [orderId])).toBe(2);
          expect(await countRows(db, 'outbox', [orderId])).toBe(2);
        },
      );
    });

    describe('when 50 writers append at the same expected version at once', () => {
      it('lets exactly one succeed; the other 49 get ConcurrencyError', async () => {
        const orderId = newId();
        await store.append([stream(orderId, 'order', 0, [anEvent(orderId)])]);

        const outcomes = await Promise.allSettled(
          Array.from({ length: 50 }, () =>
            store.append([stream(orderId, 'order', 1, [anEvent(orderId, 'PriceQuoted')])]),
          ),
        );

        const succeeded = outcomes.filter((o) => o.status === 'fulfilled');
        const rejected = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
        expect(succeeded).toHaveLength(1);
        expect(rejected).toHaveLength(49);
        for (const reason of rejected) {
          expect(reason).toBeInstanceOf(ConcurrencyError);
          expect(reason).toMatchObject({ stream: orderId, expected: 1, actual: 2 });
        }
        const stored = await store.load(orderId);
        expect(stored.map((e) => e.version)).toEqual([1, 2]);
        expect((await outboxFor(orderId)).map((r) => r.event_id)).toEqual(stored.map((e) => e.event_id));
      });
    });

    describe('when an event id is appended again', () => {
      it('reports a duplicate and writes nothing new', async () => {
        const orderId = newId();
        const event = anEvent(orderId);
        await store.append([stream(orderId, 'order', 0, [event])]);

        const retry = await store.append([stream(orderId, 'order', 0, [event])]);
        const atNextVersion = await store.append([stream(orderId, 'order', 1, [event])]);

        expect(retry).toEqual({ status: 'duplicate', event_ids: [event.event_id] });
        expect(atNextVersion).toEqual({ status: 'duplicate', event_ids: [event.event_id] });
        expect(await countRows(db, 'events', [orderId])).toBe(1);
        expect(await countRows(db, 'outbox', [orderId])).toBe(1);
      });
    });

    describe('when one append spans two streams', () => {
      it('writes both streams and their outbox rows together', async () => {
        const orderId = newId();
        const positionId = newId();
        await store.append([stream(orderId, 'order', 0, [anEvent(orderId)])]);
        await store.append([stream(positionId, 'position', 0, [anEvent(orderId, 'PositionCreated')])]);

        const result = await store.append([
          stream(orderId, 'order', 1, [anEvent(orderId, 'OrderCompleted')]),
          stream(positionId, 'position', 1, [anEvent(orderId, 'PositionUpdated')]),
        ]);

        expect(result.status).toBe('appended');
        expect((await store.load(orderId)).map((e) => [e.event_type, e.version])).toEqual([
          ['OrderAccepted', 1],
          ['OrderCompleted', 2],
        ]);
        expect(
          (await store.load(positionId)).map((e) => [e.event_type, e.version, e.aggregate_type]),
        ).toEqual([
          ['PositionCreated', 1, 'position'],
          ['PositionUpdated', 2, 'position'],
        ]);
        expect(await countRows(db, 'outbox', [orderId, positionId])).toBe(4);
      });

      it.each([
        ['the second stream is at another version', { order: 1, position: 0 }],
        ['the first stream is at another version', { order: 0, position: 1 }],
      ])('writes nothing to either stream when %s', async (_, expected) => {
        const orderId = newId();
        const positionId = newId();
        await store.append([stream(orderId, 'order', 0, [anEvent(orderId)])]);
        await store.append([stream(positionId, 'position', 0, [anEvent(orderId, 'PositionCreated')])]);

        const error = await store
          .append([
            stream(orderId, 'order', expected.order, [anEvent(orderId, 'OrderCompleted')]),
            stream(positionId, 'position', expected.position, [anEvent(orderId, 'PositionUpdated')]),
          ])
          .catch((e: unknown) => e);

        expect(error).toBeInstanceOf(ConcurrencyError);
        expect(await countRows(db, 'events', [orderId, positionId])).toBe(2);
        expect(await countRows(db, 'outbox', [orderId, positionId])).toBe(2);
      });

      it('writes nothing when one of its events was stored before', async () => {
        const orderId = newId();
        const positionId = newId();
        const stored = anEvent(orderId);
        await store.append([stream(orderId, 'order', 0, [stored])]);

        const result = await store.append([
          stream(positionId, 'position', 0, [anEvent(orderId, 'PositionCreated')]),
          { aggregate_id: newId(), aggregate_type: 'order', expected_version: 0, events: [stored] },
        ]);

        expect(result).toEqual({ status: 'duplicate', event_ids: [stored.event_id] });
        expect(await countRows(db, 'events', [positionId])).toBe(0);
        expect(await countRows(db, 'outbox', [positionId])).toBe(0);
      });
    });

    describe('when the outbox carries only the event types consumers take', () => {
      it('stores every event but gives an outbox row only to those types', async () => {
        const consumedOnly = createEventStore(db, { outboxEventTypes: ['OrderAccepted', 'OrderCompleted'] });
        const orderId = newId();
        const positionId = newId();
        await consumedOnly.append([stream(orderId, 'order', 0, [anEvent(orderId)])]);
        await consumedOnly.append([
          stream(orderId, 'order', 1, [anEvent(orderId, 'PriceQuoted'), anEvent(orderId, 'OrderCompleted')]),
          stream(positionId, 'position', 0, [anEvent(orderId, 'PositionCreated')]),
        ]);

        expect(await countRows(db, 'events', [orderId, positionId])).toBe(4);
        expect((await outboxFor(orderId)).map((row) => [row.event_type, row.version])).toEqual([
          ['OrderAccepted', 1],
          ['OrderCompleted', 3],
        ]);
        expect(await outboxFor(positionId)).toEqual([]);
      });
    });

    describe('when several streams are loaded together', () => {
      it('returns their events in the order they were stored', async () => {
        const orderId = newId();
        const positionId = newId();
        await store.append([stream(orderId, 'order', 0, [anEvent(orderId)])]);
        await store.append([stream(positionId, 'position', 0, [anEvent(orderId, 'PositionCreated')])]);
        await store.append([
          stream(positionId, 'position', 1, [anEvent(orderId, 'PositionUpdated')]),
          stream(orderId, 'order', 1, [anEvent(orderId, 'OrderCompleted')]),
        ]);

        const events = await store.loadStreams([orderId, positionId, newId()]);

        expect(events.map((e) => e.event_type)).toEqual([
          'OrderAccepted',
          'PositionCreated',
          'PositionUpdated',
          'OrderCompleted',
        ]);
      });
    });

    describe('when an append interleaves the events of two streams', () => {
      it('stores them in the given sequence, each stream still numbered 1..n', async () => {
        const orderId = newId();
        const positionId = newId();
        await store.append([stream(orderId, 'order', 0, [anEvent(orderId)])]);
        const quoted = anEvent(orderId, 'PriceQuoted');
        const created = anEvent(orderId, 'PositionCreated');
        const executing = anEvent(orderId, 'SwapExecuting');

        await store.append(
          [stream(orderId, 'order', 1, [quoted, executing]), stream(positionId, 'position', 0, [created])],
          { sequence: [quoted.event_id, created.event_id, executing.event_id] },
        );

        const events = await store.loadStreams([orderId, positionId]);
        expect(events.map((e) => [e.event_type, e.version])).toEqual([
          ['OrderAccepted', 1],
          ['PriceQuoted', 2],
          ['PositionCreated', 1],
          ['SwapExecuting', 3],
        ]);
      });
    });

    describe("when an append carries a consumer's processed record", () => {
      it('writes it with the events, and not at all when the append fails', async () => {
        const orderId = newId();
        const cause = newId();
        const processed = {
          event_id: cause,
          aggregate_id: orderId,
          event_type: 'OrderAccepted',
          processed_by: 'test',
        };
        await store.append([stream(orderId, 'order', 0, [anEvent(orderId)])], {
          processed,
        });
        await store
          .append([stream(orderId, 'order', 0, [anEvent(orderId)])], {
            processed: { ...processed, processed_by: 'other' },
          })
          .catch(() => undefined);

        const rows = await db.query('SELECT processed_by FROM processed_events WHERE event_id = $1', [cause]);
        expect(rows).toEqual([{ processed_by: 'test' }]);
      });
    });

    describe('when an append is malformed', () => {
      it('refuses an append without events and a negative expected version', async () => {
        const id = newId();
        await expect(store.append([])).rejects.toThrow(/at least one event/);
        await expect(store.append([stream(id, 'order', 0, [])])).rejects.toThrow(/at least one event/);
        await expect(
          store.append([
            { aggregate_id: id, aggregate_type: 'order', expected_version: -1, events: [anEvent(id)] },
          ]),
        ).rejects.toThrow(/expected version/);
        expect(await countRows(db, 'events', [id])).toBe(0);
      });
    });

    describe('when a stream is only a condition of the append', () => {
      it('appends to the other stream while the condition holds, and nothing once it moved on', async () => {
        const orderId = newId();
        const positionId = newId();
        await store.append([stream(orderId, 'order', 0, [anEvent(orderId)])]);
        const guard = stream(orderId, 'order', 1, []);

        const held = await store.append([
          guard,
          stream(positionId, 'position', 0, [anEvent(orderId, 'PositionCreated')]),
        ]);
        await store.append([stream(orderId, 'order', 1, [anEvent(orderId, 'OrderFailed')])]);
        const moved = await store
          .append([guard, stream(positionId, 'position', 1, [anEvent(orderId, 'PositionUpdated')])])
          .catch((e: unknown) => e);

        expect(held.status).toBe('appended');
        expect(moved).toBeInstanceOf(ConcurrencyError);
        expect(moved).toMatchObject({ stream: orderId, expected: 1, actual: 2 });
        expect((await store.load(positionId)).map((e) => e.event_type)).toEqual(['PositionCreated']);
        expect(await countRows(db, 'outbox', [orderId, positionId])).toBe(3);
      });
    });

    describe('when all events are read for a rebuild', () => {
      it('returns every committed event once, in global order, in batches, resumable from a position', async () => {
        // Start after a marker of our own: the shared database holds other tests' events too.
        const markerId = newId();
        const marker = await store.append([stream(markerId, 'order', 0, [anEvent(markerId)])]);
        if (marker.status !== 'appended' || !marker.events[0]) throw new Error('marker not appended');
        const from = marker.events[0].position;
        // On a young database make our ids cross 99 → 100: ordering by their text would show it.
        // (Only there: pushing a shared database's sequence to the next power of ten on every run
        // would overflow it within a few dozen runs.)
        await db.query(`SELECT setval('events_id_seq', 98) FROM events_id_seq WHERE last_value < 90`);
        const streams = [newId(), newId(), newId()];
        for (const id of streams) {
          await store.append([stream(id, 'order', 0, [anEvent(id), anEvent(id)])]);
        }
        const ours = new Set(streams);

        const seen: StoredEvent[] = [];
        const batchSizes: number[] = [];
        for await (const batch of store.readAll({ from, batchSize: 2 })) {
          batchSizes.push(batch.length);
          seen.push(...batch);
        }

        expect(batchSizes.every((n) => n <= 2)).toBe(true);
        const mine = seen.filter((e) => ours.has(e.aggregate_id));
        expect(mine.map((e) => `${e.aggregate_id}:${e.version}`)).toEqual(
          streams.flatMap((id) => [`${id}:1`, `${id}:2`]),
        );
        const ids = seen.map((e) => e.event_id);
        expect(new Set(ids).size).toBe(ids.length);

        const middle = mine[2];
        if (!middle) throw new Error('expected six events');
        const rest: StoredEvent[] = [];
        for await (const batch of store.readAll({ from: middle.position })) rest.push(...batch);
        expect(rest.filter((e) => ours.has(e.aggregate_id)).map((e) => e.event_id)).toEqual(
          mine.slice(3).map((e) => e.event_id),
        );
        expect(START).toEqual({ transaction_id: '0', id: '0' });
      });
    });

    describe('when a stored event does not match the event catalogue', () => {
      it('refuses to read its stream, naming the event and the failing field', async () => {
        const orderId = newId();
        const valid = anEvent(orderId);
        // Written as an older or buggy producer might have: the store does not check what it writes.
        const { user_id: _user, ...withoutUser } = anEvent(orderId).event_data as Record<string, unknown>;
        const broken = { ...anEvent(orderId), event_data: withoutUser } as NewEvent;
        await store.append([stream(orderId, 'order', 0, [valid, broken])]);

        for (const read of [() => store.load(orderId), () => store.loadStreams([orderId])]) {
          const error = await read().catch((e: unknown) => e);
          expect(error).toBeInstanceOf(InvalidMessageError);
          expect((error as Error).message).toBe(
            `Invalid stored event ${broken.event_id}: event_data.user_id is required`,
          );
        }
      });
    });
  });
}
