import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import type { ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../../src/app/ports/database.ts';
import { createDeadLetterCounter } from '../../../src/infra/alerts.ts';
import {
  deadLetterQueueOf,
  declareTopology,
  deleteTopology,
  topology,
} from '../../../src/infra/bus/rabbit/topology.ts';
import { redriveQueues } from '../../../src/ops/redrive.ts';
import { DATABASE_URL, scratchPostgres } from '../../helpers/databases.ts';
import { AMQP_URL } from '../../helpers/rabbit.ts';

// Needs PostgreSQL and RabbitMQ: DATABASE_URL and AMQP_URL. A topology under a prefix of its own.
describe.runIf(DATABASE_URL && AMQP_URL)('the dead-letter count with RabbitMQ', () => {
  const topo = topology({ prefix: `test.dlcount.${randomUUID().slice(0, 8)}.` });
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let db: Database;
  let amqp: ChannelModel;
  beforeAll(async () => {
    scratch = await scratchPostgres({ max: 2 });
    db = scratch.db;
    amqp = await connect(AMQP_URL ?? '');
  });
  afterAll(async () => {
    await deleteTopology(await amqp.createChannel(), topo).catch(() => {});
    await amqp?.close();
    await scratch?.drop();
  });

  it('counts nothing before any consumer declared the queues, then the messages of every <queue>.dead, and none once they are redriven', async () => {
    const counter = createDeadLetterCounter(db, { amqpUrl: AMQP_URL ?? '', topology: topo });
    try {
      expect(await counter.count()).toBe(0);
      const channel = await amqp.createConfirmChannel();
      await declareTopology(channel, topo);
      for (const queue of topo.queues) {
        channel.sendToQueue(deadLetterQueueOf(queue.name), Buffer.from('{}'), { persistent: true });
      }
      await channel.waitForConfirms();
      expect(await counter.count()).toBe(topo.queues.length);

      await redriveQueues(AMQP_URL ?? '', topo);
      expect(await counter.count()).toBe(0);
      await channel.close();
    } finally {
      await counter.close();
    }
  });
});
