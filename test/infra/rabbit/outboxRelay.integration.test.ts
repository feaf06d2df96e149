import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'amqplib';
import type { ChannelModel, ConsumeMessage } from 'amqplib';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOutboxRelay } from '../../../src/infra/bus/rabbit/outboxRelay.ts';
import type { OutboxRelay, OutboxRelayOptions } from '../../../src/infra/bus/rabbit/outboxRelay.ts';
import { declareTopology, deleteTopology, topology } from '../../../src/infra/bus/rabbit/topology.ts';
import type { Database } from '../../../src/app/ports/database.ts';
import { postgresDatabase } from '../../../src/infra/db/postgres.ts';
import { createEventStore } from '../../../src/infra/eventStore.ts';
import type { EventStore, NewEvent } from '../../../src/app/ports/eventStore.ts';
import { silentLogger } from '../../../src/infra/logger.ts';
import { DATABASE_URL } from '../../helpers/databases.ts';
import { AMQP_URL, bodyOf, collect, scratchPostgres } from '../../helpers/rabbit.ts';
import type { Collector } from '../../helpers/rabbit.ts';
import { startTcpProxy } from '../../helpers/tcpProxy.ts';
import type { TcpProxy } from '../../helpers/tcpProxy.ts';
import { eventually } from '../../helpers/wait.ts';

const TYPE = 'RelayTested';

/**
 * Appends a one-event stream; returns its ids. The event is outside the catalogue on purpose
 * (the relay carries any row, and no consumer of the service takes it), hence the cast: the store
 * writes it as given, and nothing here reads it back through the store.
 */
async function appendOne(store: EventStore, eventType = TYPE) {
  const aggregateId = randomUUID();
  const eventId = randomUUID();
  const event = {
    event_id: eventId,
    event_type: eventType,
    event_data: { order_id: aggregateId, from_amount: '1000.00' },
    metadata: {
      correlation_id: aggregateId,
      causation_id: `request-${aggregateId}`,
      occurred_at: new Date().toISOString(),
      schema_version: 1,
    },
  } as NewEvent;
  await store.append([
    { aggregate_id: aggregateId, aggregate_type: 'order', expected_version: 0, events: [event] },
  ]);
  return { aggregateId, eventId };
}

async function appendMany(store: EventStore, n: number, writers = 8): Promise<string[]> {
  const ids: string[] = [];
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = w; i < n; i += writers) ids.push((await appendOne(store)).eventId);
    }),
  );
  return ids;
}

/** How many times each of `eventIds` arrived (by messageId = event_id). */
function arrivals(messages: readonly ConsumeMessage[], eventIds: readonly string[]): Map<string, number> {
  const wanted = new Set(eventIds);
  const counts = new Map<string, number>();
  for (const m of messages) {
    const id = m.properties.messageId as string;
    if (wanted.has(id)) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

const seenAll =
  (eventIds: readonly string[], times = 1) =>
  (messages: readonly ConsumeMessage[]) => {
    const counts = arrivals(messages, eventIds);
    return eventIds.every((id) => (counts.get(id) ?? 0) >= times);
  };

/** A logger that keeps every line it writes, as an operator's log file would. */
function recordingLogger() {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  return { logger, lines };
}

/** A TCP proxy to the host and port of `url`, and `url` through it. */
async function proxied(url: string): Promise<{ proxy: TcpProxy; url: string }> {
  const target = new URL(url);
  const proxy = await startTcpProxy({
    host: target.hostname,
    port: Number(target.port) || (target.protocol === 'amqp:' ? 5672 : 5432),
  });
  target.host = `127.0.0.1:${proxy.port}`;
  return { proxy, url: target.toString() };
}

async function unpublished(db: Database, eventIds: readonly string[]): Promise<number> {
  const [row] = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM outbox WHERE NOT published AND event_id = ANY($1::uuid[])',
    [eventIds],
  );
  return row?.n ?? -1;
}

describe.runIf(DATABASE_URL && AMQP_URL)('outbox relay on PostgreSQL and RabbitMQ', () => {
  // A private exchange and database: nothing of other test files is published or seen.
  // No queues of its own: each test binds the queues it reads, for every type (all mandatory).
  const topo = { ...topology({ prefix: `test.relay.${randomUUID().slice(0, 8)}.` }), queues: [] };
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let db: Database;
  let store: EventStore;
  let amqp: ChannelModel;
  const relays: OutboxRelay[] = [];
  const collectors: Collector[] = [];

  function relay(overrides: Partial<OutboxRelayOptions> = {}): OutboxRelay {
    const r = createOutboxRelay({
      db,
      amqpUrl: AMQP_URL ?? '',
      logger: silentLogger,
      topology: topo,
      mandatory: () => true,
      batchSize: 100,
      ...overrides,
    });
    relays.push(r);
    return r;
  }

  async function queue(patterns: readonly string[] = ['#']) {
    const c = await collect(amqp, topo.exchange, patterns);
    collectors.push(c);
    return c;
  }

  /** After the relays stopped: a marker published behind everything shows nothing else is on its way. */
  async function drained(c: Collector): Promise<void> {
    const ch = await amqp.createConfirmChannel();
    const marker = randomUUID();
    ch.publish(topo.exchange, TYPE, Buffer.from('{}'), { messageId: marker });
    await ch.waitForConfirms();
    await ch.close();
    await c.waitFor((ms) => ms.some((m) => m.properties.messageId === marker), 'the marker');
  }

  beforeAll(async () => {
    scratch = await scratchPostgres(DATABASE_URL ?? '', 'relay_test');
    db = scratch.db;
    store = createEventStore(db);
    amqp = await connect(AMQP_URL ?? '');
    const ch = await amqp.createChannel();
    await declareTopology(ch, topo);
    await ch.close();
  });

  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop()));
    await Promise.all(collectors.splice(0).map((c) => c.close()));
  });

  afterAll(async () => {
    if (amqp) {
      const ch = await amqp.createChannel();
      await deleteTopology(ch, topo);
      await amqp.close();
    }
    await scratch?.drop();
  });

  it('publishes everything appended exactly once, with the envelope in headers and body', async () => {
    const c = await queue();
    const r = relay();
    await r.start();
    const ids = await appendMany(store, 300);
    await c.waitFor(seenAll(ids), 'all 300 events');
    await r.stop();
    await drained(c);

    expect([...arrivals(c.messages, ids).values()].every((n) => n === 1)).toBe(true);
    expect(await unpublished(db, ids)).toBe(0);
    expect(r.counters.published).toBeGreaterThanOrEqual(300);

    const message = c.messages.find((m) => m.properties.messageId === ids[0]);
    const body = bodyOf(message!);
    expect(message?.fields.routingKey).toBe(TYPE);
    expect(message?.properties).toMatchObject({ contentType: 'application/json', deliveryMode: 2 });
    expect(message?.properties.headers).toEqual({
      event_id: ids[0],
      aggregate_id: body.aggregate_id,
      aggregate_type: 'order',
      version: 1,
      correlation_id: body.aggregate_id,
      causation_id: `request-${String(body.aggregate_id)}`,
    });
    expect(body).toMatchObject({ event_id: ids[0], event_type: TYPE, version: 1 });
    expect(body.event_data).toEqual({ order_id: body.aggregate_id, from_amount: '1000.00' });
  });

  it('two relays at once publish each row once', async () => {
    const c = await queue();
    const [a, b] = [relay({ batchSize: 20 }), relay({ batchSize: 20 })];
    await Promise.all([a.start(), b.start()]);
    const ids = await appendMany(store, 1000, 16);
    await c.waitFor(seenAll(ids), 'all 1000 events');
    await Promise.all([a.stop(), b.stop()]);
    await drained(c);

    expect([...arrivals(c.messages, ids).values()].filter((n) => n !== 1)).toEqual([]);
    expect(await unpublished(db, ids)).toBe(0);
    expect(a.counters.published + b.counters.published).toBeGreaterThanOrEqual(1000);
  });

  it('publishes a row whose transaction took its id first and committed last', async () => {
    const c = await queue();
    const r = relay();
    await r.start();
    const late = { aggregateId: randomUUID(), eventId: randomUUID() };
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let inserted!: () => void;
    const insertedNow = new Promise<void>((resolve) => (inserted = resolve));
    const slow = db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO outbox (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
         VALUES ($1, $2, 'order', $3, 1, '{}'::jsonb, '{}'::jsonb)`,
        [late.eventId, late.aggregateId, TYPE],
      );
      inserted();
      await held;
    });
    await insertedNow;
    const ids = await appendMany(store, 50);
    await c.waitFor(seenAll(ids), 'the events committed after the late row took its id');
    expect(arrivals(c.messages, [late.eventId]).size).toBe(0);

    release();
    await slow;
    await c.waitFor(seenAll([late.eventId]), 'the late row');
    await r.stop(); // finishes the batch in flight: marks arrive after the messages
    expect(await unpublished(db, [late.eventId, ...ids])).toBe(0);
  });

  it('republishes a batch whose relay died after the confirms and before marking it', async () => {
    const c = await queue();
    const ids: string[] = [];
    let killed!: Promise<void>;
    // Dies at its first batch: the outbox holds no other unpublished rows by now.
    const doomed = relay({
      afterConfirm() {
        killed = doomed.stop();
        throw new Error('killed after confirm');
      },
    });
    await doomed.start();
    ids.push(...(await appendMany(store, 20, 1)));
    // The first batch with our rows was confirmed, so its messages arrive; the rest never went out.
    await c.waitFor((ms) => arrivals(ms, ids).size > 0, 'the doomed batch');
    await killed;
    // Everything confirmed is queued ahead of a marker: count the first round only once it is in.
    await drained(c);
    const firstRound = arrivals(c.messages, ids).size;
    expect(await unpublished(db, ids)).toBe(20);

    const next = relay();
    await next.start();
    await c.waitFor(seenAll(ids), 'all 20 events from the next relay');
    await next.stop();
    await drained(c);

    // Downstream sees the doomed batch twice (same event_id): consumers deduplicate on it.
    const counts = arrivals(c.messages, ids);
    expect([...counts.values()].filter((n) => n === 2)).toHaveLength(firstRound);
    expect([...counts.values()].every((n) => n === 1 || n === 2)).toBe(true);
    expect(await unpublished(db, ids)).toBe(0);
  });

  it('retries an unroutable event with backoff without blocking the rows behind it', async () => {
    const noRoute = `NoRoute.${randomUUID().slice(0, 8)}`;
    const c = await queue([TYPE]);
    const r = relay({ retryMinDelayMs: 20, retryMaxDelayMs: 200 });
    await r.start();
    const stuck = await appendOne(store, noRoute);
    const ids = await appendMany(store, 50, 1);
    await c.waitFor(seenAll(ids), 'the 50 events behind the unroutable one');
    expect(await unpublished(db, [stuck.eventId])).toBe(1);
    expect(r.counters.returned).toBeGreaterThanOrEqual(1);

    // Still retried: once a queue is bound for its type, it goes out and is marked.
    await c.channel.bindQueue(c.queue, topo.exchange, noRoute);
    await c.waitFor(seenAll([stuck.eventId]), 'the once unroutable event');
    await r.stop();
    expect(await unpublished(db, [stuck.eventId, ...ids])).toBe(0);
  });
  describe('when its database is unreachable for 5 s', () => {
    it('keeps its one broker connection, logs a handful of lines, and publishes everything once the database is back', async () => {
      const database = await proxied(scratch.url);
      const broker = await proxied(AMQP_URL ?? '');
      const relayDb = postgresDatabase(database.url, { max: 4 });
      const log = recordingLogger();
      try {
        const c = await queue();
        const r = relay({ db: relayDb, amqpUrl: broker.url, logger: log.logger });
        await r.start();
        const before = await appendMany(store, 20, 1);
        await c.waitFor(seenAll(before), 'the events appended before the outage');
        const connectionsBefore = broker.proxy.connections;
        const linesBefore = log.lines.length;

        database.proxy.cut('reset');
        // Written meanwhile by a process that still reaches the database.
        const during = await appendMany(store, 20, 1);
        await eventually(() => r.counters.failedBatches > 0, 'the relay to meet the outage');
        await sleep(5_000); // the outage itself is what is under test
        const brokerConnections = broker.proxy.connections - connectionsBefore;
        const lines = log.lines.slice(linesBefore);
        database.proxy.restore();

        await c.waitFor(seenAll([...before, ...during]), 'the events appended during the outage', 20_000);
        await r.stop();
        expect({ brokerConnections, connected: r.counters.connections }).toEqual({
          brokerConnections: 0,
          connected: 1,
        });
        // Capped exponential backoff: about one line per doubling, never one per poll.
        expect(lines.length).toBeGreaterThan(0);
        expect(lines.length).toBeLessThanOrEqual(12);
        expect(await unpublished(db, [...before, ...during])).toBe(0);
      } finally {
        await broker.proxy.close();
        await database.proxy.close();
        await relayDb.close();
      }
    }, 30_000);
  });

  describe('when the broker is unreachable for 3 s', () => {
    it('reconnects with backoff, not at once and again, and publishes what was appended meanwhile', async () => {
      const broker = await proxied(AMQP_URL ?? '');
      try {
        const c = await queue();
        const r = relay({ amqpUrl: broker.url, reconnectMinDelayMs: 100, reconnectMaxDelayMs: 1_000 });
        await r.start();
        const before = await appendMany(store, 20, 1);
        await c.waitFor(seenAll(before), 'the events appended before the outage');
        const connectionsBefore = broker.proxy.connections;

        broker.proxy.cut();
        await eventually(() => !r.connected, 'the relay to lose its connection');
        const during = await appendMany(store, 20, 1);
        await sleep(3_000); // the outage itself is what is under test
        const attempts = broker.proxy.connections - connectionsBefore;
        broker.proxy.restore();

        await c.waitFor(seenAll([...before, ...during]), 'the events appended during the outage', 20_000);
        await r.stop();
        // 100, 200, 400, 800, then every 1000 ms: about 7 attempts in 3 s, not thousands.
        expect(attempts).toBeGreaterThan(1);
        expect(attempts).toBeLessThanOrEqual(10);
        expect(await unpublished(db, [...before, ...during])).toBe(0);
      } finally {
        await broker.proxy.close();
      }
    }, 30_000);
  });
});
