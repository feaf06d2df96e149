import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RetryLaterError } from '../../src/app/messages.ts';
import type { Consumer, Delivery, EventMessage } from '../../src/app/messages.ts';
import { createChannelsService } from '../../src/app/notifications/channels.ts';
import { createNotifier } from '../../src/app/notifications/notifier.ts';
import { sagaConsumer } from '../../src/app/sagaConsumer.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createTelegramClient } from '../../src/infra/notify/telegram.ts';
import { idempotencyKeyFor } from '../../src/domain/ids.ts';
import { eventually } from '../helpers/buses.ts';
import type { BusHarness, DeadLetterView } from '../helpers/buses.ts';
import { aMessage } from '../helpers/messages.ts';
import { startTelegramEmulator } from '../helpers/notifyPeers.ts';
import { assertSagaGuarantees, sagaWorld, streams } from '../helpers/saga.ts';
import type { SagaWorld } from '../helpers/saga.ts';
import { notifierPorts } from '../../src/wiring.ts';
import { createUserChannelStore } from '../../src/infra/notify/userChannels.ts';
import { createInbox } from '../../src/infra/inbox.ts';

/** The OrderAccepted of a placed order, as the outbox (and so any bus) carries it. */
async function acceptedMessage(world: SagaWorld, orderId: string): Promise<EventMessage> {
  const [accepted] = await world.events(orderId);
  if (!accepted) throw new Error(`order ${orderId} has no OrderAccepted`);
  const { id: _id, created_at: _at, position: _position, ...message } = accepted;
  return message;
}

/** Wraps a consumer to count the deliveries it finished (resolved), by event id. */
function counting(consumer: Consumer) {
  const finished = new Map<string, number>();
  return {
    finished: (eventId: string) => finished.get(eventId) ?? 0,
    consumer: {
      ...consumer,
      async handle(message: EventMessage, delivery?: Delivery) {
        await consumer.handle(message, delivery);
        finished.set(message.event_id, (finished.get(message.event_id) ?? 0) + 1);
      },
    } satisfies Consumer,
  };
}

/**
 * The delivery contract every bus must keep (ack after commit, dead letters with a reason,
 * retries bounded for failures and unbounded for waiting, draining stop), asserted by what a user
 * sees: swaps on the venue, events in the store, processed and dead-letter records. Run by one
 * test file per bus; `open` gives the bus-specific part behind {@link BusHarness}.
 */
export function consumerContract(label: string, open: () => Promise<BusHarness>): void {
  describe(`the consumer contract on ${label}`, () => {
    let bus: BusHarness;

    beforeAll(async () => {
      bus = await open();
    });
    afterEach(async () => {
      await bus?.stopAll();
    });
    afterAll(async () => {
      await bus?.close();
    });

    async function processed(consumer: Consumer, eventId: string): Promise<number> {
      const [row] = await bus.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM processed_events WHERE event_id = $1 AND processed_by = $2',
        [eventId, consumer.name],
      );
      return row?.n ?? 0;
    }

    async function deadLetterOf(consumer: Consumer, eventId: string): Promise<DeadLetterView> {
      let found: DeadLetterView[] = [];
      await eventually(
        async () => (found = await bus.deadLetters(consumer, eventId)).length > 0,
        `a dead letter of ${eventId}`,
      );
      expect(found, 'recorded once').toHaveLength(1);
      return found[0] as DeadLetterView;
    }

    /**
     * A consumer of OrderCompleted/OrderFailed whose effect is its processed_events row; `fail`
     * decides, by the message's delivery number, whether a delivery throws before the effect.
     */
    function probe(fail: (delivery: number) => Error | undefined = () => undefined, name?: string) {
      const deliveries = new Map<string, number>();
      const redeliveredFlags = new Map<string, boolean[]>();
      const consumer: Consumer = {
        name: name ?? `probe-${randomUUID().slice(0, 8)}`,
        eventTypes: ['OrderCompleted', 'OrderFailed'],
        async handle(message, info) {
          const delivery = (deliveries.get(message.event_id) ?? 0) + 1;
          deliveries.set(message.event_id, delivery);
          redeliveredFlags.set(message.event_id, [
            ...(redeliveredFlags.get(message.event_id) ?? []),
            info?.redelivered ?? false,
          ]);
          const error = fail(delivery);
          if (error) throw error;
          await bus.db.transaction((tx) => createInbox(tx).mark(consumer.name, message));
        },
      };
      return {
        consumer,
        deliveries: (eventId: string) => deliveries.get(eventId) ?? 0,
        /** What the bus said of each delivery: was it a redelivery? */
        redelivered: (eventId: string) => redeliveredFlags.get(eventId) ?? [],
        handled: (message: EventMessage) =>
          eventually(async () => (await processed(consumer, message.event_id)) === 1, 'the message handled'),
      };
    }

    /**
     * Marks the end of a test's traffic: once a message published after the others is handled,
     * whatever was still to come for them has come (both buses deliver oldest first).
     */
    async function afterTheRest(consumer: ReturnType<typeof probe>): Promise<void> {
      const marker = aMessage('OrderCompleted');
      await bus.publish(consumer.consumer, marker);
      await consumer.handled(marker);
    }

    describe('when one OrderAccepted is delivered 20 times at once to 3 orchestrators', () => {
      it('executes one swap and records one terminal event and one processed row', async () => {
        const world = sagaWorld(bus.db);
        const orderId = await world.place();
        const message = await acceptedMessage(world, orderId);
        const orchestrators = [0, 1, 2].map(() =>
          counting(sagaConsumer(createInbox(bus.db), world.newRunner())),
        );
        const finished = () => orchestrators.reduce((n, o) => n + o.finished(message.event_id), 0);

        await bus.deliverConcurrently(
          message,
          20,
          orchestrators.map((o) => o.consumer),
        );
        await eventually(() => finished() === 20, 'all 20 deliveries handled');

        const events = await world.events(orderId);
        expect(streams(events).order.at(-1)).toBe('OrderCompleted');
        expect(world.market.venue.executions(idempotencyKeyFor(orderId)), 'swaps in the venue ledger').toBe(
          1,
        );
        assertSagaGuarantees(orderId, events, world.market);
        expect(await processed(orchestrators[0]?.consumer as Consumer, message.event_id)).toBe(1);
        expect(await bus.deadLetters(orchestrators[0]?.consumer as Consumer, message.event_id)).toEqual([]);
      });
    });

    describe('when one OrderCompleted is delivered 20 times at once to 3 notifiers', () => {
      it('sends one Telegram message to the right chat and records one processed row', async () => {
        const emulator = await startTelegramEmulator();
        try {
          const token = `${Math.floor(Math.random() * 1e9)}:contract`;
          const userId = `user-${randomUUID()}`;
          await createChannelsService(createUserChannelStore(bus.db)).update(userId, {
            telegram_chat_id: '777',
          });
          const world = sagaWorld(bus.db);
          const orderId = await world.place({ user_id: userId });
          await world.runner.run(orderId);
          const completed = (await world.events(orderId)).find((e) => e.event_type === 'OrderCompleted');
          if (!completed) throw new Error(`order ${orderId} did not complete`);
          const { id: _id, created_at: _at, position: _position, ...message } = completed;
          const notifiers = [0, 1, 2].map(() =>
            counting(
              createNotifier({
                ...notifierPorts(bus.db),
                logger: silentLogger,
                telegram: createTelegramClient({ token, apiRoot: emulator.apiRoot }),
              }),
            ),
          );
          const finished = () => notifiers.reduce((n, o) => n + o.finished(message.event_id), 0);

          await bus.deliverConcurrently(
            message,
            20,
            notifiers.map((n) => n.consumer),
          );
          // A broker delivers all 20 copies; on the in-process bus the endpoints told to retry
          // later find the row published by the one that sent, and stop. Either way, once the
          // message is processed and the endpoints drained, nothing more may be sent.
          await eventually(
            async () =>
              (await processed(notifiers[0]?.consumer as Consumer, message.event_id)) === 1 &&
              (!bus.carriesBytes || finished() === 20),
            'the message processed (and, on a broker, every copy handled)',
          );
          await bus.stopAll();
          const sent = emulator.sent(token);
          expect(sent.map((m) => m.chat_id)).toEqual(['777']);
          expect(sent[0]?.text).toMatch(new RegExp(`^Order ${orderId.slice(0, 8)} completed: `));
          expect(await processed(notifiers[0]?.consumer as Consumer, message.event_id)).toBe(1);
        } finally {
          await emulator.stop();
        }
      });
    });

    describe('when poison messages arrive between valid orders', () => {
      it('dead-letters each with its reason while every valid order completes', async () => {
        const world = sagaWorld(bus.db);
        const orchestrator = sagaConsumer(createInbox(bus.db), world.runner);
        // Subscribed to a type the catalogue does not know (a misconfiguration): it must not pass.
        const consumer: Consumer = { ...orchestrator, eventTypes: ['OrderAccepted', 'OrderTeleported'] };
        await bus.run(consumer);
        const valid = async () => {
          const orderId = await world.place();
          await bus.publish(consumer, await acceptedMessage(world, orderId));
          return orderId;
        };
        const accepted = aMessage('OrderAccepted');
        const { from_amount: _amount, ...withoutAmount } = accepted.event_data;
        // Messages as any producer might send them: not typed envelopes.
        const poisons: Array<{
          message: { readonly event_id: string; readonly [field: string]: unknown };
          reason: string;
          error: RegExp;
        }> = [
          {
            message: { ...aMessage('OrderAccepted'), event_data: withoutAmount },
            reason: 'invalid-message',
            error: /event_data\.from_amount is required/,
          },
          {
            message: {
              ...accepted,
              event_id: randomUUID(),
              event_data: { ...accepted.event_data, from_amount: 1000.5 },
            },
            reason: 'invalid-message',
            error: /event_data\.from_amount must be a decimal string/,
          },
          {
            message: { ...aMessage('OrderAccepted'), event_type: 'OrderTeleported' },
            reason: 'invalid-message',
            error: /event_type is not an event type of the catalogue: "OrderTeleported"/,
          },
          // Valid, but names an order that was never stored: the handler refuses it.
          { message: { ...aMessage('OrderAccepted') }, reason: 'poison', error: /names no stored order/ },
        ];

        const before = [await valid(), await valid()];
        for (const poison of poisons) await bus.publish(consumer, poison.message);
        const malformed = randomUUID();
        if (bus.carriesBytes) await bus.publishBytes(consumer, malformed, '{"event_id": "');
        const after = [await valid(), await valid()];

        for (const poison of poisons) {
          const dead = await deadLetterOf(consumer, poison.message.event_id);
          expect(dead.reason, poison.error.source).toBe(poison.reason);
          expect(dead.error).toMatch(poison.error);
        }
        if (bus.carriesBytes) {
          const dead = await deadLetterOf(consumer, malformed);
          expect(dead).toMatchObject({ reason: 'invalid-message', attempts: 1 });
          expect(dead.error).toMatch(/malformed JSON/);
        }
        for (const orderId of [...before, ...after]) {
          await eventually(
            async () => streams(await world.events(orderId)).order.at(-1) === 'OrderCompleted',
            `order ${orderId} completed`,
          );
          assertSagaGuarantees(orderId, await world.events(orderId), world.market);
        }
      });
    });

    describe('when a handler fails transiently', () => {
      it('delivers again until it succeeds, with nothing dead-lettered', async () => {
        const flaky = probe((n) => (n <= 2 ? new Error(`database busy (delivery ${n})`) : undefined));
        await bus.run(flaky.consumer);
        const message = aMessage('OrderCompleted');
        await bus.publish(flaky.consumer, message);

        await flaky.handled(message);
        expect(flaky.deliveries(message.event_id)).toBe(3);
        expect(await bus.deadLetters(flaky.consumer, message.event_id)).toEqual([]);
      });

      it('dead-letters it with the last error at the delivery limit, and delivers it no more', async () => {
        const broken = probe((n) => new Error(`venue down (delivery ${n})`));
        await bus.run(broken.consumer);
        const message = aMessage('OrderFailed');
        await bus.publish(broken.consumer, message);

        const dead = await deadLetterOf(broken.consumer, message.event_id);
        const limit = bus.deliveryLimit;
        expect(dead).toEqual({
          reason: 'delivery-limit',
          error: `venue down (delivery ${limit})`,
          attempts: limit,
        });
        const healthy = probe(undefined, broken.consumer.name);
        await bus.stopAll();
        await bus.run(healthy.consumer);
        await afterTheRest(healthy);
        expect(broken.deliveries(message.event_id)).toBe(limit);
        expect(healthy.deliveries(message.event_id), 'not delivered after its dead letter').toBe(0);
        expect(await processed(broken.consumer, message.event_id)).toBe(0);
      });
    });

    describe('when a handler asks to retry later', () => {
      it('delivers again past the delivery limit until it succeeds', async () => {
        const waits = bus.deliveryLimit + 3;
        const waiting = probe((n) =>
          n <= waits ? new RetryLaterError(`swap outcome unknown (${n})`) : undefined,
        );
        await bus.run(waiting.consumer);
        const message = aMessage('OrderCompleted');
        await bus.publish(waiting.consumer, message);

        await waiting.handled(message);
        expect(waiting.deliveries(message.event_id)).toBe(waits + 1);
        expect(waiting.redelivered(message.event_id), 'every delivery after the first says so').toEqual([
          false,
          ...Array.from({ length: waits }, () => true),
        ]);
        expect(await bus.deadLetters(waiting.consumer, message.event_id)).toEqual([]);
      });
    });

    describe('when the database is unreachable', () => {
      it('delivers again past the delivery limit until it is back, with nothing dead-lettered', async () => {
        const outage = bus.deliveryLimit + 3;
        const cut = probe((n) =>
          n <= outage
            ? Object.assign(new Error(`write CONNECTION_CLOSED 127.0.0.1:5432 (delivery ${n})`), {
                code: 'CONNECTION_CLOSED',
              })
            : undefined,
        );
        await bus.run(cut.consumer);
        const message = aMessage('OrderCompleted');
        await bus.publish(cut.consumer, message);

        await cut.handled(message);
        expect(cut.deliveries(message.event_id)).toBe(outage + 1);
        expect(await bus.deadLetters(cut.consumer, message.event_id)).toEqual([]);
      });
    });

    describe('when a handler fails after its effects committed', () => {
      it('gets the message again and the orchestrator finds its work done: one swap, one terminal event', async () => {
        const world = sagaWorld(bus.db);
        const orchestrator = sagaConsumer(createInbox(bus.db), world.runner);
        let deliveries = 0;
        const crashing: Consumer = {
          ...orchestrator,
          async handle(message) {
            deliveries += 1;
            await orchestrator.handle(message);
            if (deliveries === 1) throw new Error('process died before the ack');
          },
        };
        await bus.run(crashing);
        const orderId = await world.place();
        const message = await acceptedMessage(world, orderId);
        await bus.publish(crashing, message);

        await eventually(() => deliveries === 2, 'the message delivered again');
        await eventually(async () => (await processed(crashing, message.event_id)) === 1, 'processed');
        const events = await world.events(orderId);
        expect(streams(events).order.filter((t) => t === 'OrderCompleted')).toHaveLength(1);
        expect(world.market.venue.executions(idempotencyKeyFor(orderId))).toBe(1);
        assertSagaGuarantees(orderId, events, world.market);
        expect(await bus.deadLetters(crashing, message.event_id)).toEqual([]);
      });
    });

    describe('when an endpoint is stopped while handlers run', () => {
      it('lets them finish and settles their messages: nothing comes again after a restart', async () => {
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        const started = new Set<string>();
        const slow = probe();
        const gated: Consumer = {
          ...slow.consumer,
          async handle(message) {
            started.add(message.event_id);
            await gate;
            await slow.consumer.handle(message);
          },
        };
        const endpoint = await bus.run(gated);
        const messages = [aMessage('OrderCompleted'), aMessage('OrderFailed'), aMessage('OrderCompleted')];
        for (const message of messages) await bus.publish(gated, message);
        await eventually(() => started.size === messages.length, 'all three handlers running');

        const stopping = endpoint.stop();
        release();
        await stopping;
        for (const message of messages) expect(await processed(gated, message.event_id)).toBe(1);

        const restarted = probe(undefined, gated.name);
        await bus.run(restarted.consumer);
        await afterTheRest(restarted);
        for (const message of messages) expect(restarted.deliveries(message.event_id)).toBe(0);
      });
    });
  });
}
