import type { Message } from 'amqplib';
import { connectBroker } from '../infra/bus/rabbit/connection.ts';
import { HEADERS, publishCopy, REDRIVEN } from '../infra/bus/rabbit/messageCopies.ts';
import { createDeadLetterKeeper } from '../infra/bus/rabbit/deadLetterKeeper.ts';
import { createDeadLetters } from '../infra/deadLetters.ts';
import type { Logger } from '../app/ports/logger.ts';
import { deadLetterQueueOf } from '../infra/bus/rabbit/topology.ts';
import type { Topology } from '../infra/bus/rabbit/topology.ts';
import type { Database } from '../app/ports/database.ts';

export { REDRIVEN };

/** Messages sent back per queue (RabbitMQ) or per consumer (in-process). */
export type Redriven = Record<string, number>;

/**
 * In-process bus: sends every dead letter back. Its outbox row is marked unpublished again, so the
 * delivery hands the event once more to every consumer of its type (those that handled it find
 * their processed_events row), and the dead letter is removed — in one transaction, so a crash
 * leaves either the dead letter or the redelivery, never neither.
 */
export async function redriveDeadLetters(db: Database): Promise<Redriven> {
  return db.transaction(async (tx) => {
    const rows = await tx.query<{ consumer: string; event_id: string }>(
      'DELETE FROM dead_letters RETURNING consumer, event_id::text AS event_id',
    );
    await tx.query(
      'UPDATE outbox SET published = FALSE, published_at = NULL WHERE event_id = ANY($1::uuid[])',
      [rows.map((r) => r.event_id)],
    );
    const counts: Redriven = {};
    for (const row of rows) counts[row.consumer] = (counts[row.consumer] ?? 0) + 1;
    return counts;
  });
}

/**
 * RabbitMQ: moves every message of each `<queue>.dead` back to its queue, one at a time: a copy
 * is published (headers kept, so the message's history stays readable, plus {@link REDRIVEN}) and
 * confirmed before the dead letter is acked, so a crash in between duplicates it (consumers
 * deduplicate) and never loses it. Messages that die again while this runs are not picked up a
 * second time: each queue is drained only of the messages it held when it was looked at.
 */
export async function redriveQueues(
  amqpUrl: string,
  topo: Topology,
  options: { readonly confirmTimeoutMs?: number } = {},
): Promise<Redriven> {
  const connection = await connectBroker(amqpUrl, 'market-order-saga redrive');
  try {
    const channel = await connection.createConfirmChannel();
    const returned = new Set<string>();
    channel.on('return', (message: Message) => {
      const id = message.properties.headers?.[HEADERS.publishId] as string | undefined;
      if (id) returned.add(id);
    });
    const counts: Redriven = {};
    for (const queue of topo.queues) {
      const dead = deadLetterQueueOf(queue.name);
      let moved = 0;
      for (let left = (await channel.checkQueue(dead)).messageCount; left > 0; left--) {
        const message = await channel.get(dead, { noAck: false });
        if (message === false) break;
        const times = Number(message.properties.headers?.[REDRIVEN] ?? 0) + 1;
        await publishCopy(
          { channel, returned },
          { exchange: '', routingKey: queue.name },
          message,
          { [REDRIVEN]: times },
          options.confirmTimeoutMs ?? 5_000,
        );
        channel.ack(message);
        moved += 1;
      }
      counts[queue.name] = moved;
    }
    await channel.close();
    return counts;
  } finally {
    await connection.close().catch(() => {});
  }
}

/**
 * RabbitMQ, all of it: the dead-letter queues back to their queues ({@link redriveQueues}), then the
 * dead letters the keeper had moved into `dead_letters` (src/infra/bus/rabbit/deadLetterKeeper.ts),
 * each published to its queue and confirmed before its row is deleted.
 */
export async function redriveBroker(
  amqpUrl: string,
  topo: Topology,
  db: Database,
  logger: Logger,
): Promise<Redriven> {
  const queues = await redriveQueues(amqpUrl, topo);
  const keeper = createDeadLetterKeeper({ amqpUrl, db, topology: topo, logger });
  try {
    const kept = await createDeadLetters(db, { republish: keeper.republish }).replay();
    return { ...queues, dead_letters: kept };
  } finally {
    await keeper.stop();
  }
}
