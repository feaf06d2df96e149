import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventMessage } from '../../src/app/messages.ts';
import { SAGA_CONSUMER, sagaConsumer } from '../../src/app/sagaConsumer.ts';
import { idempotencyKeyFor } from '../../src/domain/ids.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { assertSagaGuarantees, sagaWorld, streams } from '../helpers/saga.ts';
import { createInbox } from '../../src/infra/inbox.ts';

describe('the orchestrator consumer', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db?.close();
  });

  async function acceptedMessage(
    world: ReturnType<typeof sagaWorld>,
    orderId: string,
  ): Promise<EventMessage> {
    const [accepted] = await world.events(orderId);
    if (!accepted) throw new Error('no OrderAccepted');
    const { id: _id, created_at: _at, position: _position, ...message } = accepted;
    return message;
  }

  async function processedRows(orderId: string) {
    return db.query('SELECT processed_by FROM processed_events WHERE aggregate_id = $1', [orderId]);
  }

  describe('when OrderAccepted is delivered again after its saga finished', () => {
    it('changes nothing and keeps one processed record', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place();
      const consumer = sagaConsumer(createInbox(db), world.runner);
      const message = await acceptedMessage(world, orderId);

      await consumer.handle(message);
      const after = await world.events(orderId);
      await consumer.handle(message);
      await consumer.handle(message);

      expect(await world.events(orderId)).toEqual(after);
      expect(await processedRows(orderId)).toEqual([{ processed_by: SAGA_CONSUMER }]);
      expect(world.market.venue.executions(idempotencyKeyFor(orderId))).toBe(1);
    });
  });

  describe('when OrderAccepted is delivered several times at once', () => {
    it('runs one saga to one terminal event with one swap', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place();
      const message = await acceptedMessage(world, orderId);

      await Promise.all(
        Array.from({ length: 5 }, () => sagaConsumer(createInbox(db), world.newRunner()).handle(message)),
      );

      const events = await world.events(orderId);
      expect(streams(events).order.at(-1)).toBe('OrderCompleted');
      assertSagaGuarantees(orderId, events, world.market);
      expect(await processedRows(orderId)).toEqual([{ processed_by: SAGA_CONSUMER }]);
    });
  });

  describe('when the saga was interrupted and OrderAccepted comes again', () => {
    it('resumes it from the store instead of starting over', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place();
      world.market.venue.startOutage();
      const consumer = sagaConsumer(createInbox(db), world.runner);
      const message = await acceptedMessage(world, orderId);

      await expect(consumer.handle(message)).rejects.toThrow(/suspended/);
      world.market.venue.restore();
      await consumer.handle(message);

      const events = await world.events(orderId);
      expect(streams(events).order).toEqual([
        'OrderAccepted',
        'PriceQuoted',
        'SwapExecuting',
        'SwapExecuted',
        'OrderCompleted',
      ]);
      assertSagaGuarantees(orderId, events, world.market);
    });
  });

  describe('when the OrderAccepted of a suspended saga is redelivered', () => {
    it('loads the saga and goes on with the swap, without asking the price service again', async () => {
      const world = sagaWorld(db);
      const orderId = await world.place();
      world.market.venue.startOutage();
      const consumer = sagaConsumer(createInbox(db), world.runner);
      const message = await acceptedMessage(world, orderId);
      await expect(consumer.handle(message, { redelivered: false })).rejects.toThrow(/suspended/);
      const quotes = world.market.calls().quotes;

      await expect(consumer.handle(message, { redelivered: true })).rejects.toThrow(/suspended/);
      world.market.venue.restore();
      await consumer.handle(message, { redelivered: true });

      expect(world.market.calls().quotes, 'no price asked for a saga past its quote').toBe(quotes);
      assertSagaGuarantees(orderId, await world.events(orderId), world.market);
    });
  });
});
