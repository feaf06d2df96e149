import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Consumer } from '../../src/app/messages.ts';
import { createInProcessDelivery } from '../../src/infra/bus/inProcessDelivery.ts';
import { messageBody, publishOptions } from '../../src/infra/bus/rabbit/outboxMessage.ts';
import type { OutboxRow } from '../../src/infra/bus/rabbit/outboxMessage.ts';
import { HEADERS } from '../../src/infra/bus/rabbit/messageCopies.ts';
import {
  deadLetterQueueOf,
  declareTopology,
  deleteTopology,
  topology,
} from '../../src/infra/bus/rabbit/topology.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { REDRIVEN, redriveDeadLetters, redriveQueues } from '../../src/ops/redrive.ts';
import { eventually } from '../helpers/buses.ts';
import { migratedPglite } from '../helpers/databases.ts';
import { aMessage } from '../helpers/messages.ts';
import { AMQP_URL, consumeQueue } from '../helpers/rabbit.ts';
import { createInbox } from '../../src/infra/inbox.ts';

describe('redriving the in-process dead letters', () => {
  let db: Database;
  beforeAll(async () => {
    db = await migratedPglite();
  });
  afterAll(async () => {
    await db.close();
  });

  it('hands a dead-lettered message to its consumer again once the cause is fixed', async () => {
    let broken = true;
    const consumer: Consumer = {
      name: `redrive-${randomUUID().slice(0, 8)}`,
      eventTypes: ['OrderCompleted'],
      async handle(message) {
        if (broken) throw new Error('the database of the notifier is down');
        await db.transaction((tx) => createInbox(tx).mark(consumer.name, message));
      },
    };
    const delivery = createInProcessDelivery({
      db,
      logger: silentLogger,
      consumers: [consumer],
      deliveryLimit: 2,
      pollIntervalMs: 20,
      retryMinDelayMs: 5,
      retryMaxDelayMs: 10,
    });
    const message = aMessage('OrderCompleted');
    await db.query(
      `INSERT INTO outbox (event_id, aggregate_id, aggregate_type, event_type, version, event_data, metadata)
       VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb)`,
      [
        message.event_id,
        message.aggregate_id,
        message.aggregate_type,
        message.event_type,
        message.version,
        JSON.stringify(message.event_data),
        JSON.stringify(message.metadata),
      ],
    );
    delivery.start();
    try {
      const deadLetters = () =>
        db.query<{ error: string }>('SELECT error FROM dead_letters WHERE event_id = $1', [message.event_id]);
      await eventually(async () => (await deadLetters()).length === 1, 'the dead letter');

      broken = false;
      expect(await redriveDeadLetters(db)).toEqual({ [consumer.name]: 1 });
      delivery.wake();
      await eventually(async () => {
        const rows = await db.query(
          'SELECT 1 FROM processed_events WHERE event_id = $1 AND processed_by = $2',
          [message.event_id, consumer.name],
        );
        return rows.length === 1;
      }, 'the redriven message handled');
      expect(await deadLetters()).toEqual([]);
    } finally {
      await delivery.stop();
    }
  });
});

describe.runIf(AMQP_URL)('redriving the RabbitMQ dead-letter queues', () => {
  it('moves each dead letter back to its queue, history kept, and empties the dead-letter queue', async () => {
    const topo = topology({ prefix: `test.redrive.${randomUUID().slice(0, 8)}.` });
    const connection = await connect(AMQP_URL ?? '');
    const channel = await connection.createConfirmChannel();
    try {
      await declareTopology(channel, topo);
      const [sagaQueue] = topo.queues;
      if (!sagaQueue) throw new Error('the topology has no queue');
      const dead = deadLetterQueueOf(sagaQueue.name);
      const message = aMessage('OrderAccepted');
      const row = { ...message, id: '0' } as OutboxRow;
      const options = publishOptions(row, true);
      channel.publish(topo.deadLetterExchange, dead, messageBody(row), {
        ...options,
        headers: {
          ...(options.headers as Record<string, unknown>),
          [HEADERS.reason]: 'delivery-limit',
          [HEADERS.error]: 'venue down',
        },
      });
      await channel.waitForConfirms();
      await eventually(async () => (await channel.checkQueue(dead)).messageCount === 1, 'the dead letter');

      expect(await redriveQueues(AMQP_URL ?? '', topo)).toEqual({
        [sagaQueue.name]: 1,
        [topo.queues[1]?.name ?? '']: 0,
      });

      const back = await consumeQueue(await connection.createChannel(), sagaQueue.name, { noAck: true });
      await back.waitFor((m) => m.length === 1, 'the message back on its queue');
      const headers = back.messages[0]?.properties.headers ?? {};
      expect(back.messages[0]?.properties.messageId).toBe(message.event_id);
      expect(headers[REDRIVEN]).toBe(1);
      expect(headers[HEADERS.error]).toBe('venue down');
      expect((await channel.checkQueue(dead)).messageCount).toBe(0);
      await back.close();
    } finally {
      await deleteTopology(channel, topo);
      await connection.close();
    }
  });
});
