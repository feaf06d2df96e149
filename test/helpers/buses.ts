import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import type { ConsumeMessage } from 'amqplib';
import type { Consumer, EventMessage } from '../../src/app/messages.ts';
import { createInProcessDelivery } from '../../src/infra/bus/inProcessDelivery.ts';
import { messageBody, publishOptions } from '../../src/infra/bus/rabbit/outboxMessage.ts';
import type { OutboxRow } from '../../src/infra/bus/rabbit/outboxMessage.ts';
import { createRabbitConsumer, HEADERS } from '../../src/infra/bus/rabbit/rabbitConsumer.ts';
import {
  deadLetterQueueOf,
  declareTopology,
  DEFAULT_DELIVERY_LIMIT,
  deleteTopology,
  topology,
} from '../../src/infra/bus/rabbit/topology.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { consumeQueue, scratchPostgres } from './rabbit.ts';
import type { Collector } from './rabbit.ts';

export { eventually } from './wait.ts';

/** One running consumer of a bus, as one process would run it. */
export interface Endpoint {
  stop(): Promise<void>;
}

/** A dead letter as an operator reads it, from the table or from the dead-letter queue. */
export interface DeadLetterView {
  readonly reason: string;
  readonly error: string;
  readonly attempts: number;
}

/**
 * What the consumer-contract suite needs of a bus: the cases are written once against this and
 * run on every bus (see test/infra/consumerContract.ts).
 */
export interface BusHarness {
  readonly db: Database;
  readonly deliveryLimit: number;
  /** True when messages travel as bytes (a broker), so a body can be malformed JSON. */
  readonly carriesBytes: boolean;
  /** Runs an endpoint feeding `consumer` (stopped by `stopAll` if the test does not stop it). */
  run(consumer: Consumer): Promise<Endpoint>;
  /** Puts a message, valid or not, on its way to `consumer`'s endpoints. */
  publish(consumer: Consumer, message: object): Promise<void>;
  /** Puts raw bytes on the way to `consumer` (only where `carriesBytes`). */
  publishBytes(consumer: Consumer, messageId: string, body: string): Promise<void>;
  /**
   * Has one message delivered `times` times at once to endpoints running `consumers`: the
   * broker gets `times` copies; the in-process bus runs `times` endpoints that all claim the row.
   */
  deliverConcurrently(message: EventMessage, times: number, consumers: readonly Consumer[]): Promise<void>;
  /** The dead letters of `eventId` for `consumer` recorded so far. */
  deadLetters(consumer: Consumer, eventId: string): Promise<DeadLetterView[]>;
  stopAll(): Promise<void>;
  close(): Promise<void>;
}

/** Test pace: retries after milliseconds, not seconds. */
const FAST_RETRIES = { retryMinDelayMs: 5, retryMaxDelayMs: 20 };

function endpoints() {
  const running = new Set<Endpoint>();
  return {
    track(endpoint: Endpoint): Endpoint {
      running.add(endpoint);
      return {
        async stop() {
          running.delete(endpoint);
          await endpoint.stop();
        },
      };
    },
    stopAll: async () => {
      const all = [...running];
      running.clear();
      await Promise.all(all.map((e) => e.stop()));
    },
  };
}

/** The in-process bus on `db` (PGlite or a scratch PostgreSQL database). */
export function inProcessHarness(db: Database): BusHarness {
  const deliveries = new Set<ReturnType<typeof createInProcessDelivery>>();
  const tracked = endpoints();
  const started = (consumer: Consumer): Endpoint => {
    const delivery = createInProcessDelivery({
      db,
      logger: silentLogger,
      consumers: [consumer],
      pollIntervalMs: 20,
      ...FAST_RETRIES,
    });
    deliveries.add(delivery);
    delivery.start();
    return tracked.track({
      stop: async () => {
        deliveries.delete(delivery);
        await delivery.stop();
      },
    });
  };

  async function publish(_consumer: Consumer, message: object): Promise<void> {
    const m = message as Partial<EventMessage>;
    await db.query(
      `INSERT INTO outbox (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
       VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb) ON CONFLICT (event_id) DO NOTHING`,
      [
        m.event_id,
        m.aggregate_id,
        m.aggregate_type,
        m.event_type,
        m.version,
        JSON.stringify(m.event_data),
        JSON.stringify(m.metadata ?? null),
      ],
    );
    for (const delivery of deliveries) delivery.wake();
  }

  return {
    db,
    deliveryLimit: DEFAULT_DELIVERY_LIMIT,
    carriesBytes: false,
    run: (consumer) => Promise.resolve(started(consumer)),
    publish,
    publishBytes: () => Promise.reject(new Error('the outbox carries JSON, not bytes')),
    async deliverConcurrently(message, times, consumers) {
      // Every endpoint must claim the row before any handler can mark it published (claims queue
      // for the pool's connections): handlers of this message wait until all `times` have it.
      let arrived = 0;
      let release = () => {};
      const allArrived = new Promise<void>((resolve) => (release = resolve));
      const gated = (consumer: Consumer): Consumer => ({
        ...consumer,
        async handle(m) {
          if (m.event_id === message.event_id) {
            if (++arrived === times) release();
            await allArrived;
          }
          return consumer.handle(m);
        },
      });
      await publish(consumers[0] as Consumer, message);
      for (let i = 0; i < times; i++) started(gated(consumers[i % consumers.length] as Consumer));
    },
    async deadLetters(consumer, eventId) {
      return db.query<DeadLetterView>(
        'SELECT reason, error, attempts FROM dead_letters WHERE event_id = $1 AND consumer = $2',
        [eventId, consumer.name],
      );
    },
    stopAll: tracked.stopAll,
    close: tracked.stopAll,
  };
}

/**
 * RabbitMQ under a topology of its own (prefixed, deleted by `close`), with consumers' state in
 * `db` (a scratch database: the saga claims nothing, but its handlers write there).
 */
export async function rabbitHarness(db: Database, amqpUrl: string): Promise<BusHarness> {
  const topo = topology({ prefix: `test.contract.${randomUUID().slice(0, 8)}.` });
  const connection = await connect(amqpUrl);
  const channel = await connection.createConfirmChannel();
  await declareTopology(channel, topo);
  const deadQueues = new Map<string, Collector>();
  for (const queue of topo.queues) {
    const dead = deadLetterQueueOf(queue.name);
    deadQueues.set(queue.name, await consumeQueue(await connection.createChannel(), dead, { noAck: true }));
  }
  const tracked = endpoints();

  /** The queue bound to the consumer's first event type the topology routes. */
  function queueOf(consumer: Consumer): string {
    const queue = topo.queues.find((q) => q.routingKeys.some((k) => consumer.eventTypes.includes(k)));
    if (!queue) throw new Error(`no queue of the topology takes ${consumer.eventTypes.join(', ')}`);
    return queue.name;
  }

  async function publishTo(consumer: Consumer, copies: readonly object[]): Promise<void> {
    for (const message of copies) {
      const row = { ...message, id: '0' } as OutboxRow;
      channel.sendToQueue(queueOf(consumer), messageBody(row), publishOptions(row, false));
    }
    await channel.waitForConfirms();
  }

  async function run(consumer: Consumer): Promise<Endpoint> {
    const endpoint = createRabbitConsumer({
      amqpUrl,
      logger: silentLogger,
      consumer,
      queue: queueOf(consumer),
      topology: topo,
      ...FAST_RETRIES,
      connectionName: `test contract ${consumer.name}`,
    });
    await endpoint.start();
    return tracked.track(endpoint);
  }

  const idOf = (m: ConsumeMessage) =>
    (m.properties.headers?.event_id as string | undefined) ?? (m.properties.messageId as string | undefined);

  return {
    db,
    deliveryLimit: DEFAULT_DELIVERY_LIMIT,
    carriesBytes: true,
    run,
    publish: (consumer, message) => publishTo(consumer, [message]),
    async publishBytes(consumer, messageId, body) {
      channel.sendToQueue(queueOf(consumer), Buffer.from(body), { messageId, persistent: true });
      await channel.waitForConfirms();
    },
    async deliverConcurrently(message, times, consumers) {
      for (const consumer of consumers) await run(consumer);
      await publishTo(
        consumers[0] as Consumer,
        Array.from({ length: times }, () => message),
      );
    },
    deadLetters(consumer, eventId) {
      const dead = deadQueues.get(queueOf(consumer));
      const found = (dead?.messages ?? [])
        .filter((m) => idOf(m) === eventId && m.properties.headers?.[HEADERS.consumer] === consumer.name)
        .map((m) => ({
          reason: String(m.properties.headers?.[HEADERS.reason]),
          error: String(m.properties.headers?.[HEADERS.error]),
          attempts: Number(m.properties.headers?.[HEADERS.attempts]),
        }));
      return Promise.resolve(found);
    },
    stopAll: tracked.stopAll,
    async close() {
      await tracked.stopAll();
      for (const dead of deadQueues.values()) await dead.close();
      await deleteTopology(channel, topo);
      await connection.close();
    },
  };
}

/**
 * A bus harness whose consumers' state is a migrated database of its own beside `databaseUrl`'s,
 * dropped by the harness's `close`: for tests whose consumers or relays act on every row they see.
 */
export async function onScratchDatabase(
  databaseUrl: string,
  label: string,
  harness: (db: Database) => BusHarness | Promise<BusHarness>,
): Promise<BusHarness> {
  const scratch = await scratchPostgres(databaseUrl, label);
  const bus = await harness(scratch.db);
  return {
    ...bus,
    async close() {
      await bus.close();
      await scratch.drop();
    },
  };
}
