import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Consumer, EventMessage } from '../../src/app/messages.ts';
import { SAGA_CONSUMER } from '../../src/app/sagaConsumer.ts';
import { currencies } from '../../src/domain/money.ts';
import { createInProcessDelivery } from '../../src/infra/bus/inProcessDelivery.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createSimulatedMarket } from '../../src/infra/venues/simulatedMarket.ts';
import { wireOrderFlow } from '../../src/wiring.ts';
import { migratedPglite, newId } from '../helpers/databases.ts';
import type { DomainEventType } from '../../src/domain/events.ts';
import { aCatalogueEvent } from '../helpers/messages.ts';
import { anOrder, FAST_SETTINGS } from '../helpers/saga.ts';
import { eventually } from '../helpers/wait.ts';

/** A consumer that records what it gets and lets the test await a given message. */
function recorder(
  name: string,
  types: readonly string[],
  behaviour: (m: EventMessage) => Promise<void> = async () => {},
) {
  const seen: EventMessage[] = [];
  const waiters: Array<{ id: string; times: number; resolve: () => void }> = [];
  const consumer: Consumer = {
    name,
    eventTypes: types,
    async handle(message) {
      seen.push(message);
      try {
        await behaviour(message);
      } finally {
        for (const w of waiters.filter((w) => seen.filter((m) => m.event_id === w.id).length >= w.times))
          w.resolve();
      }
    },
  };
  const received = (eventId: string, times = 1) =>
    new Promise<void>((resolve) => {
      waiters.push({ id: eventId, times, resolve });
      if (seen.filter((m) => m.event_id === eventId).length >= times) resolve();
    });
  return { consumer, seen, received };
}

async function publishedOf(db: Database, eventId: string): Promise<boolean | undefined> {
  const [row] = await db.query<{ published: boolean }>('SELECT published FROM outbox WHERE event_id = $1', [
    eventId,
  ]);
  return row?.published;
}

/** Resolves once the row is marked: the mark follows the handler, so there is no event to await. */
async function untilPublished(db: Database, eventId: string): Promise<void> {
  for (let i = 0; i < 200 && !(await publishedOf(db, eventId)); i++)
    await new Promise((r) => setTimeout(r, 5));
}

describe('in-process delivery from the outbox', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  async function appendOne(type: DomainEventType = 'OrderAccepted') {
    const id = newId();
    // Valid payloads: the bus validates every message before a consumer sees it.
    const event = aCatalogueEvent(id, type);
    await createEventStore(db).append([
      { aggregate_id: id, aggregate_type: 'order', expected_version: 0, events: [event] },
    ]);
    return event.event_id;
  }

  describe('when an event is appended', () => {
    it('hands it to the consumers of its type with its envelope, then marks the row published', async () => {
      const a = recorder('a', ['PriceQuoted']);
      const b = recorder('b', ['PriceQuoted']);
      const delivery = createInProcessDelivery({
        db,
        logger: silentLogger,
        consumers: [a.consumer, b.consumer],
      });
      delivery.start();
      const eventId = await appendOne('PriceQuoted');
      delivery.wake();

      await Promise.all([a.received(eventId), b.received(eventId)]);
      await untilPublished(db, eventId);
      await delivery.stop();

      expect(a.seen.find((m) => m.event_id === eventId)).toMatchObject({
        event_type: 'PriceQuoted',
        aggregate_type: 'order',
        version: 1,
        event_data: { source: 'test' },
        metadata: { schema_version: 1 },
      });
      expect(await publishedOf(db, eventId)).toBe(true);
    });

    it('marks an event no consumer wants as published without delivering it', async () => {
      const a = recorder('a', ['Nothing']);
      const delivery = createInProcessDelivery({ db, logger: silentLogger, consumers: [a.consumer] });
      const eventId = await appendOne('PositionClosed');
      delivery.start();
      await untilPublished(db, eventId);
      await delivery.stop();
      expect(await publishedOf(db, eventId)).toBe(true);
      expect(a.seen).toEqual([]);
    });
  });

  describe('when several events wait in the outbox', () => {
    it('delivers them in the order they were stored, ids past a power of ten included', async () => {
      // This file's database is young: make the ids cross 99 → 100.
      await db.query(`SELECT setval('outbox_id_seq', 98) FROM outbox_id_seq WHERE last_value < 90`);
      const ids = [
        await appendOne('SwapExecuted'),
        await appendOne('SwapExecuted'),
        await appendOne('SwapExecuted'),
      ];
      const inOrder = recorder('in-order', ['SwapExecuted']);
      const delivery = createInProcessDelivery({
        db,
        logger: silentLogger,
        consumers: [inOrder.consumer],
        concurrency: 1,
      });
      delivery.start();
      await inOrder.received(ids[2] ?? '');
      await delivery.stop();
      expect(inOrder.seen.map((m) => m.event_id)).toEqual(ids);
    });
  });

  describe('when a consumer fails', () => {
    it('keeps the row unpublished and delivers it again until it succeeds', async () => {
      let failures = 2;
      const flaky = recorder('flaky', ['OrderFailed'], () =>
        failures-- > 0 ? Promise.reject(new Error('not yet')) : Promise.resolve(),
      );
      const delivery = createInProcessDelivery({
        db,
        logger: silentLogger,
        consumers: [flaky.consumer],
        retryMinDelayMs: 1,
        retryMaxDelayMs: 2,
      });
      delivery.start();
      const eventId = await appendOne('OrderFailed');

      await flaky.received(eventId, 3);
      await untilPublished(db, eventId);
      await delivery.stop();
      expect(flaky.seen.filter((m) => m.event_id === eventId)).toHaveLength(3);
      expect(await publishedOf(db, eventId)).toBe(true);
    });
  });

  describe('when the process stops before a row is marked', () => {
    it('the next start delivers it again', async () => {
      const broken = recorder('broken', ['OrderCompleted'], () => Promise.reject(new Error('crashing')));
      const first = createInProcessDelivery({
        db,
        logger: silentLogger,
        consumers: [broken.consumer],
        retryMinDelayMs: 10_000,
      });
      first.start();
      const eventId = await appendOne('OrderCompleted');
      first.wake();
      await broken.received(eventId);
      await first.stop();
      expect(await publishedOf(db, eventId)).toBe(false);

      const healthy = recorder('healthy', ['OrderCompleted']);
      const second = createInProcessDelivery({ db, logger: silentLogger, consumers: [healthy.consumer] });
      second.start();
      await healthy.received(eventId);
      await untilPublished(db, eventId);
      await second.stop();
      expect(await publishedOf(db, eventId)).toBe(true);
    });
  });

  describe('when it is stopped while a row waits for its retry, and started again', () => {
    it('delivers that row at once instead of leaving it held', async () => {
      let failures = 1;
      const flaky = recorder('flaky-once', ['SwapExecuting'], () =>
        failures-- > 0 ? Promise.reject(new Error('not yet')) : Promise.resolve(),
      );
      const delivery = createInProcessDelivery({
        db,
        logger: silentLogger,
        consumers: [flaky.consumer],
        // The retry would come long after the test: only the restart can deliver it again.
        retryMinDelayMs: 60_000,
      });
      delivery.start();
      const eventId = await appendOne('SwapExecuting');
      delivery.wake();
      await flaky.received(eventId);
      await delivery.stop();
      expect(await publishedOf(db, eventId)).toBe(false);

      delivery.start();
      try {
        await eventually(
          async () => (await publishedOf(db, eventId)) === true,
          'the row to be delivered',
          5_000,
        );
      } finally {
        await delivery.stop();
      }
      expect(flaky.seen.filter((m) => m.event_id === eventId)).toHaveLength(2);
    });
  });

  describe('when an order is accepted with the orchestrator subscribed', () => {
    it('starts its saga from the outbox, runs it to completion and records the event as processed', async () => {
      const market = createSimulatedMarket({ seed: 3 });
      let finished!: (orderId: string) => void;
      const done = new Promise<string>((resolve) => (finished = resolve));
      const { store, orders, delivery } = wireOrderFlow({
        db,
        logger: silentLogger,
        prices: market.priceService,
        venue: market.venue,
        currencies: currencies(),
        settings: FAST_SETTINGS,
        decorate: (orchestrator) => ({
          ...orchestrator,
          async handle(message) {
            await orchestrator.handle(message);
            finished(message.aggregate_id);
          },
        }),
      });
      delivery.start();

      const { order_id } = await orders.accept(anOrder(), { causationId: null });
      expect(await done).toBe(order_id);
      await delivery.stop();

      const types = (await store.load(order_id)).map((e) => e.event_type);
      expect(types.at(-1)).toBe('OrderCompleted');
      const processed = await db.query('SELECT processed_by FROM processed_events WHERE aggregate_id = $1', [
        order_id,
      ]);
      expect(processed).toEqual([{ processed_by: SAGA_CONSUMER }]);
      const [accepted] = await db.query<{ published: boolean }>(
        `SELECT published FROM outbox WHERE aggregate_id = $1 AND event_type = 'OrderAccepted'`,
        [order_id],
      );
      expect(accepted?.published).toBe(true);
    });
  });
});
