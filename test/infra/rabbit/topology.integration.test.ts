import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  deadLetterQueueOf,
  declareTopology,
  deleteTopology,
  QUEUES,
  topology,
} from '../../../src/infra/bus/rabbit/topology.ts';
import { DATABASE_URL } from '../../helpers/databases.ts';
import { AMQP_URL, consumeQueue } from '../../helpers/rabbit.ts';

const byId = (id: string) => (ms: readonly ConsumeMessage[]) => ms.some((m) => m.properties.messageId === id);

describe.runIf(DATABASE_URL && AMQP_URL)('RabbitMQ topology', () => {
  // The real names under a private prefix: same shape, no interference with running services.
  const topo = topology({ prefix: `test.topology.${randomUUID().slice(0, 8)}.` });
  const saga = topo.queues[0]!.name;
  const notifications = topo.queues[1]!.name;
  let amqp: ChannelModel;
  const channels: Channel[] = [];

  async function channel(): Promise<Channel> {
    const ch = await amqp.createChannel();
    channels.push(ch);
    return ch;
  }

  beforeAll(async () => {
    amqp = await connect(AMQP_URL ?? '');
  });

  // A consumer left open would take its share of the next test's messages.
  afterEach(async () => {
    for (const ch of channels.splice(0)) await ch.close().catch(() => {});
  });

  afterAll(async () => {
    const ch = await amqp.createChannel();
    await deleteTopology(ch, topo);
    await amqp.close();
  });

  it('exports the queues and their routing keys as data', () => {
    expect(topology()).toEqual({
      exchange: 'events',
      deadLetterExchange: 'events.dlx',
      queues: [
        { name: 'saga.order-accepted', routingKeys: ['OrderAccepted'] },
        { name: 'notifications', routingKeys: ['OrderCompleted', 'OrderFailed'] },
      ],
    });
    expect(QUEUES.notifications.routingKeys).toContain('OrderFailed');
  });

  it('declares idempotently and routes each event type to its queue', async () => {
    const ch = await channel();
    await declareTopology(ch, topo, { deliveryLimit: 2 });
    await declareTopology(ch, topo, { deliveryLimit: 2 });
    for (const q of [saga, notifications]) {
      await ch.checkQueue(q);
      await ch.checkQueue(deadLetterQueueOf(q));
    }
    const ids = { OrderAccepted: randomUUID(), OrderCompleted: randomUUID(), OrderFailed: randomUUID() };
    for (const [type, id] of Object.entries(ids)) {
      ch.publish(topo.exchange, type, Buffer.from('{}'), { messageId: id, persistent: true });
    }
    const sagaQueue = await consumeQueue(await channel(), saga, { noAck: true });
    const notified = await consumeQueue(await channel(), notifications, { noAck: true });
    await sagaQueue.waitFor(byId(ids.OrderAccepted), 'OrderAccepted on the saga queue');
    await notified.waitFor(
      (ms) => byId(ids.OrderCompleted)(ms) && byId(ids.OrderFailed)(ms),
      'OrderCompleted and OrderFailed on the notifications queue',
    );
    expect(sagaQueue.messages.map((m) => m.fields.routingKey)).toEqual(['OrderAccepted']);
    expect(notified.messages).toHaveLength(2);
  });

  it('dead-letters a rejected message and one requeued past the delivery limit', async () => {
    const ch = await channel();
    await declareTopology(ch, topo, { deliveryLimit: 2 });
    const poison = randomUUID();
    const flaky = randomUUID();
    const consumer = await channel();
    await consumer.prefetch(1);
    const deliveries = await consumeQueue(consumer, saga, {
      noAck: false,
      onMessage: (m) =>
        // Poison: rejected at once. Flaky: requeued every time, until the limit takes over.
        consumer.nack(m, false, m.properties.messageId !== poison),
    });
    const dead = await consumeQueue(await channel(), deadLetterQueueOf(saga), { noAck: true });
    ch.publish(topo.exchange, 'OrderAccepted', Buffer.from('{}'), { messageId: poison, persistent: true });
    ch.publish(topo.exchange, 'OrderAccepted', Buffer.from('{}'), { messageId: flaky, persistent: true });

    await dead.waitFor((ms) => byId(poison)(ms) && byId(flaky)(ms), 'both messages dead-lettered');
    const times = (id: string) => deliveries.messages.filter((m) => m.properties.messageId === id).length;
    expect(times(poison)).toBe(1);
    expect(times(flaky)).toBeGreaterThanOrEqual(2);
    expect(times(flaky)).toBeLessThanOrEqual(3);
    const deaths = dead.messages.map(
      (m) => (m.properties.headers?.['x-death'] as { reason: string }[])[0]?.reason,
    );
    expect(deaths.sort()).toEqual(['delivery_limit', 'rejected']);
  });
});
