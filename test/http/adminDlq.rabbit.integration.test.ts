import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSagaAdmin } from '../../src/app/sagaAdmin.ts';
import type { Database } from '../../src/app/ports/database.ts';
import type { DeadLetters } from '../../src/app/ports/deadLetters.ts';
import { createDeadLetterKeeper } from '../../src/infra/bus/rabbit/deadLetterKeeper.ts';
import type { DeadLetterKeeper } from '../../src/infra/bus/rabbit/deadLetterKeeper.ts';
import { HEADERS } from '../../src/infra/bus/rabbit/messageCopies.ts';
import { messageBody, publishOptions } from '../../src/infra/bus/rabbit/outboxMessage.ts';
import type { OutboxRow } from '../../src/infra/bus/rabbit/outboxMessage.ts';
import {
  deadLetterQueueOf,
  declareTopology,
  deleteTopology,
  topology,
} from '../../src/infra/bus/rabbit/topology.ts';
import { createDeadLetters } from '../../src/infra/deadLetters.ts';
import { createEventStore } from '../../src/infra/eventStore.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { createSagaRows } from '../../src/infra/sagaAdmin.ts';
import { REDRIVEN, redriveBroker } from '../../src/ops/redrive.ts';
import { testApp } from '../helpers/app.ts';
import { DATABASE_URL, scratchPostgres } from '../helpers/databases.ts';
import { aMessage } from '../helpers/messages.ts';
import { AMQP_URL, bodyOf, consumeQueue } from '../helpers/rabbit.ts';
import { sagaWorld } from '../helpers/saga.ts';
import { eventually } from '../helpers/wait.ts';

/*
 * The admin API's dead letters on RabbitMQ: the keeper moves `<queue>.dead` messages into the
 * dead_letters table (acked after the commit), so they are listed, replayed (published to their
 * queue with a confirm, then deleted) and dropped as the in-process bus's are.
 */

interface Listed {
  messages: {
    id: string;
    queue: string;
    event_id: string;
    event_type: string;
    order_id: string | null;
    reason: string;
    error: string;
    deaths: number;
  }[];
}

const post = (body: unknown) => ({
  method: 'POST',
  body: JSON.stringify(body),
  headers: { 'content-type': 'application/json' },
});

describe.runIf(AMQP_URL && DATABASE_URL)('dead letters on RabbitMQ, through the admin API', () => {
  const topo = topology({ prefix: `test.admin-dlq.${randomUUID().slice(0, 8)}.` });
  const [sagaQueue, notificationsQueue] = topo.queues;
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let db: Database;
  let connection: ChannelModel;
  let channel: ConfirmChannel;
  let keeper: DeadLetterKeeper;
  let deadLetters: DeadLetters;
  let app: Hono;

  /** Dead-letters `message` as the RabbitMQ consumer does: to `<queue>.dead`, with why. */
  async function killed(queue: string, type: 'OrderAccepted' | 'OrderCompleted', redriven = 0) {
    const message = aMessage(type);
    const row = { ...message, id: '0' } as OutboxRow;
    const options = publishOptions(row, true);
    channel.publish(topo.deadLetterExchange, deadLetterQueueOf(queue), messageBody(row), {
      ...options,
      headers: {
        ...(options.headers as Record<string, unknown>),
        [HEADERS.reason]: 'poison',
        [HEADERS.error]: 'the handler refused it',
        [HEADERS.consumer]: `${queue}-consumer`,
        [HEADERS.queue]: queue,
        [HEADERS.attempts]: 1,
        ...(redriven ? { [REDRIVEN]: redriven } : {}),
      },
    });
    await channel.waitForConfirms();
    return message;
  }

  const listed = async () => (await (await app.request('/admin/dlq')).json()) as Listed;
  const deadCount = async (queue: string) =>
    (await channel.checkQueue(deadLetterQueueOf(queue))).messageCount;

  beforeAll(async () => {
    if (!sagaQueue || !notificationsQueue) throw new Error('the topology has two queues');
    scratch = await scratchPostgres({ max: 4 });
    db = scratch.db;
    connection = await connect(AMQP_URL ?? '');
    channel = await connection.createConfirmChannel();
    await declareTopology(channel, topo);
    keeper = createDeadLetterKeeper({ amqpUrl: AMQP_URL ?? '', db, topology: topo, logger: silentLogger });
    deadLetters = createDeadLetters(db, { absorb: keeper.absorb, republish: keeper.republish });
    const world = sagaWorld(db);
    app = testApp(db, {
      admin: {
        sagas: createSagaAdmin({
          rows: createSagaRows(db),
          store: createEventStore(db),
          runner: world.runner,
          deadlineMs: 30_000,
          stuckAfterMs: 60_000,
        }),
        deadLetters,
      },
    });
  });
  afterAll(async () => {
    await keeper?.stop();
    await deleteTopology(channel, topo).catch(() => {});
    await connection?.close().catch(() => {});
    await scratch?.drop();
  });

  it('lists the dead-letter queues’ messages, moved into the table, and counts them by queue', async () => {
    const accepted = await killed(sagaQueue?.name ?? '', 'OrderAccepted', 2);
    const completed = await killed(notificationsQueue?.name ?? '', 'OrderCompleted');
    await eventually(
      async () => (await deadCount(sagaQueue?.name ?? '')) === 1,
      'the dead letter in its queue',
    );

    const { messages } = await listed();
    expect(messages).toHaveLength(2);
    expect(messages.find((m) => m.event_id === accepted.event_id)).toMatchObject({
      queue: sagaQueue?.name,
      event_type: 'OrderAccepted',
      order_id: accepted.aggregate_id,
      reason: 'poison',
      error: 'the handler refused it',
      deaths: 3,
    });
    expect(messages.find((m) => m.event_id === completed.event_id)).toMatchObject({
      queue: notificationsQueue?.name,
      deaths: 1,
    });
    // Moved, acked after the commit: the broker's dead-letter queues are empty.
    expect(await deadCount(sagaQueue?.name ?? '')).toBe(0);
    expect(await deadCount(notificationsQueue?.name ?? '')).toBe(0);
    expect(await deadLetters.count()).toEqual({
      [sagaQueue?.name ?? '']: 1,
      [notificationsQueue?.name ?? '']: 1,
    });
  });

  it('replays one to its queue, confirmed, with its redrive count, and deletes its row', async () => {
    const consumer = await consumeQueue(await connection.createChannel(), sagaQueue?.name ?? '', {
      noAck: true,
    });
    try {
      const target = (await listed()).messages.find((m) => m.queue === sagaQueue?.name);
      if (!target) throw new Error('no dead letter of the saga queue');
      const res = await app.request('/admin/dlq/replay', post({ ids: [target.id] }));
      expect(await res.json()).toEqual({ replayed: 1 });
      await consumer.waitFor((m) => m.length === 1, 'the message back on its queue');
      const [back] = consumer.messages;
      expect(back && bodyOf(back)).toMatchObject({ event_id: target.event_id, event_type: 'OrderAccepted' });
      expect(back?.properties.messageId).toBe(target.event_id);
      expect(back?.properties.headers?.[REDRIVEN]).toBe(3);
      expect((await listed()).messages.map((m) => m.id)).not.toContain(target.id);
    } finally {
      await consumer.close();
    }
  });

  it('drops every dead letter, including one that died meanwhile', async () => {
    await killed(notificationsQueue?.name ?? '', 'OrderCompleted');
    await eventually(
      async () => (await deadCount(notificationsQueue?.name ?? '')) === 1,
      'the new dead letter',
    );
    const res = await app.request('/admin/dlq/drop', post({ all: true }));
    expect(await res.json()).toEqual({ dropped: 2 });
    expect((await listed()).messages).toEqual([]);
    expect(await deadCount(notificationsQueue?.name ?? '')).toBe(0);
  });

  it('keeps a message the broker dead-lettered itself (delivery limit), named by its x-death', async () => {
    const message = aMessage('OrderAccepted');
    const row = { ...message, id: '0' } as OutboxRow;
    const options = publishOptions(row, true);
    channel.publish(topo.deadLetterExchange, deadLetterQueueOf(sagaQueue?.name ?? ''), messageBody(row), {
      ...options,
      headers: {
        ...(options.headers as Record<string, unknown>),
        'x-death': [{ queue: sagaQueue?.name, reason: 'delivery_limit', count: 1 }],
      },
    });
    await channel.waitForConfirms();
    await eventually(async () => (await deadCount(sagaQueue?.name ?? '')) === 1, 'the dead letter');
    const { messages } = await listed();
    expect(messages.find((m) => m.event_id === message.event_id)).toMatchObject({
      queue: sagaQueue?.name,
      reason: 'delivery_limit',
      deaths: 1,
    });
    expect(await (await app.request('/admin/dlq/drop', post({ all: true }))).json()).toEqual({ dropped: 1 });
  });

  it('sends back, with `npm run redrive`, both the kept dead letters and those still on the broker', async () => {
    const kept = await killed(sagaQueue?.name ?? '', 'OrderAccepted');
    await eventually(async () => (await deadCount(sagaQueue?.name ?? '')) === 1, 'the first dead letter');
    await keeper.absorb();
    const waiting = await killed(sagaQueue?.name ?? '', 'OrderAccepted');
    await eventually(async () => (await deadCount(sagaQueue?.name ?? '')) === 1, 'the second dead letter');
    const consumer = await consumeQueue(await connection.createChannel(), sagaQueue?.name ?? '', {
      noAck: true,
    });
    try {
      const redriven = await redriveBroker(AMQP_URL ?? '', topo, db, silentLogger);
      expect(redriven).toEqual({
        [sagaQueue?.name ?? '']: 1,
        [notificationsQueue?.name ?? '']: 0,
        dead_letters: 1,
      });
      await consumer.waitFor((m) => m.length === 2, 'both messages back on their queue');
      expect(consumer.messages.map((m) => String(m.properties.messageId)).sort()).toEqual(
        [kept.event_id, waiting.event_id].sort(),
      );
      expect((await listed()).messages).toEqual([]);
    } finally {
      await consumer.close();
    }
  });

  it('moves dead letters on its own while started', async () => {
    const message = await killed(sagaQueue?.name ?? '', 'OrderAccepted');
    const running = createDeadLetterKeeper({
      amqpUrl: AMQP_URL ?? '',
      db,
      topology: topo,
      logger: silentLogger,
      intervalMs: 50,
    });
    running.start();
    try {
      await eventually(async () => {
        const rows = await db.query('SELECT 1 FROM dead_letters WHERE event_id = $1', [message.event_id]);
        return rows.length === 1;
      }, 'the keeper moving the dead letter');
      expect(await deadCount(sagaQueue?.name ?? '')).toBe(0);
    } finally {
      await running.stop();
    }
  });
});
