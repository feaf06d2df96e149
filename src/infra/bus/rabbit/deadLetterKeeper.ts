import { randomUUID } from 'node:crypto';
import { Buffer } from 'node:buffer';
import type { ChannelModel, ConfirmChannel, GetMessage, Message, MessageProperties } from 'amqplib';
import type { Database } from '../../../app/ports/database.ts';
import type { Logger } from '../../../app/ports/logger.ts';
import type { StoredDeadLetter } from '../../deadLetters.ts';
import { connectBroker } from './connection.ts';
import { HEADERS, headerCount, publishCopy, REDRIVEN } from './messageCopies.ts';
import { deadLetterQueueOf, declareTopology } from './topology.ts';
import type { Topology } from './topology.ts';

/**
 * The RabbitMQ side of the admin API's dead letters. Listing or dropping one message of a queue is
 * not something AMQP offers (a queue is read from its head, and `basic.get` + requeue reorders and
 * counts deliveries), so the keeper moves every message of each `<queue>.dead` into the
 * `dead_letters` table, where the in-process bus keeps its own: one place to list, count, replay
 * and drop, whatever the bus. A message is acked only after its row is committed, so none is lost;
 * a crash in between stores it twice at most, as one row (UNIQUE(event_id, consumer)).
 * A replay publishes the stored message to its queue with a confirm before the row is deleted.
 */
export interface DeadLetterKeeperOptions {
  readonly amqpUrl: string;
  readonly db: Database;
  readonly topology: Topology;
  readonly logger: Logger;
  /** Pause between two passes over the dead-letter queues while started (default 5 s). */
  readonly intervalMs?: number;
  /** Longest wait for a replay's confirm (default 5 s). */
  readonly confirmTimeoutMs?: number;
  readonly connectionName?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const INSERT_SQL = `
INSERT INTO dead_letters (consumer, event_id, event_type, aggregate_id, message, reason, error, attempts,
                          bus, queue, deaths)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, 'rabbitmq', $9, $10)
ON CONFLICT (event_id, consumer) DO UPDATE
SET message = EXCLUDED.message, reason = EXCLUDED.reason, error = EXCLUDED.error, attempts = EXCLUDED.attempts,
    bus = 'rabbitmq', queue = EXCLUDED.queue, deaths = greatest(dead_letters.deaths, EXCLUDED.deaths),
    dead_lettered_at = now()`;

/** What the message stored in the table holds: enough to publish it again as it was. */
interface KeptMessage {
  readonly content: string;
  readonly properties: Partial<MessageProperties>;
}

const text = (value: unknown): string | undefined =>
  typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('utf8') : undefined;

/** The broker's own dead-lettering (delivery limit) records why in `x-death`. */
function brokerDeath(message: Message): { queue?: string; reason?: string } {
  const deaths = message.properties.headers?.['x-death'] as
    Array<{ queue?: unknown; reason?: unknown }> | undefined;
  const first = Array.isArray(deaths) ? deaths[0] : undefined;
  return { queue: text(first?.queue), reason: text(first?.reason) };
}

function bodyOf(message: Message): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(message.content.toString('utf8'));
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The row a dead message becomes; `deadQueue` is where it was found. */
function rowOf(message: Message, sourceQueue: string) {
  const headers = (message.properties.headers ?? {}) as Record<string, unknown>;
  const body = bodyOf(message);
  const broker = brokerDeath(message);
  const queue = text(headers[HEADERS.queue]) ?? broker.queue ?? sourceQueue;
  const consumer = text(headers[HEADERS.consumer]) ?? queue;
  const eventId = [message.properties.messageId, headers.event_id, body.event_id]
    .map(text)
    .find((id) => id !== undefined && UUID.test(id));
  const aggregateId = [headers.aggregate_id, body.aggregate_id]
    .map(text)
    .find((id) => id !== undefined && UUID.test(id));
  const kept: KeptMessage = {
    content: message.content.toString('base64'),
    properties: { ...message.properties, headers },
  };
  return [
    consumer,
    // A message without an event id (not one of ours) still gets a row of its own.
    eventId ?? randomUUID(),
    text(message.properties.type) ?? text(body.event_type) ?? null,
    aggregateId ?? null,
    JSON.stringify(kept),
    text(headers[HEADERS.reason]) ?? broker.reason ?? 'unknown',
    text(headers[HEADERS.error]) ?? '',
    Math.max(1, headerCount(message, HEADERS.attempts) || headerCount(message, 'x-delivery-count')),
    queue,
    headerCount(message, REDRIVEN) + 1,
  ];
}

export function createDeadLetterKeeper(options: DeadLetterKeeperOptions) {
  const { db, topology: topo, logger } = options;
  const intervalMs = options.intervalMs ?? 5_000;
  const confirmTimeoutMs = options.confirmTimeoutMs ?? 5_000;
  let link: { connection: ChannelModel; channel: ConfirmChannel; returned: Set<string> } | null = null;

  async function linked() {
    if (link) return link;
    const connection = await connectBroker(
      options.amqpUrl,
      options.connectionName ?? 'market-order-saga dead-letter keeper',
    );
    try {
      const channel = await connection.createConfirmChannel();
      const current = { connection, channel, returned: new Set<string>() };
      connection.on('error', (err: Error) =>
        logger.warn({ err }, 'dead-letter keeper: broker connection error'),
      );
      channel.on('error', (err: Error) => logger.warn({ err }, 'dead-letter keeper: channel error'));
      channel.on('close', () => void connection.close().catch(() => {}));
      connection.on('close', () => {
        if (link === current) link = null;
      });
      channel.on('return', (message: Message) => {
        const id = message.properties.headers?.[HEADERS.publishId] as string | undefined;
        if (id) current.returned.add(id);
      });
      await declareTopology(channel, topo);
      link = current;
      return current;
    } catch (error) {
      await connection.close().catch(() => {});
      throw error;
    }
  }

  async function pass(): Promise<number> {
    const { channel } = await linked();
    let moved = 0;
    for (const queue of topo.queues) {
      const dead = deadLetterQueueOf(queue.name);
      // Only what is there now: a message that dies meanwhile waits for the next pass.
      for (let left = (await channel.checkQueue(dead)).messageCount; left > 0; left--) {
        const message: GetMessage | false = await channel.get(dead, { noAck: false });
        if (message === false) break;
        try {
          await db.query(INSERT_SQL, rowOf(message, queue.name));
        } catch (error) {
          channel.nack(message, false, true);
          throw error;
        }
        channel.ack(message);
        moved += 1;
      }
    }
    if (moved > 0) logger.info({ moved }, 'dead letters moved from the broker into dead_letters');
    return moved;
  }

  let absorbing: Promise<number> | null = null;
  /** One pass over every `<queue>.dead` (passes do not overlap): resolves to the messages moved. */
  function absorb(): Promise<number> {
    absorbing ??= pass().finally(() => {
      absorbing = null;
    });
    return absorbing;
  }

  /** Publishes a stored dead letter to its queue; resolves once the broker confirmed it. */
  async function republish(letter: StoredDeadLetter): Promise<void> {
    const kept = letter.message as KeptMessage;
    const via = await linked();
    const headers = (kept.properties.headers ?? {}) as Record<string, unknown>;
    const message = {
      content: Buffer.from(kept.content, 'base64'),
      fields: {},
      properties: { ...kept.properties, headers },
    } as Message;
    const times = Number(headers[REDRIVEN] ?? 0) + 1;
    await publishCopy(
      via,
      { exchange: '', routingKey: letter.queue },
      message,
      { [REDRIVEN]: times },
      confirmTimeoutMs,
    );
  }

  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;
  let stopped = true;

  async function loop(): Promise<void> {
    try {
      await absorb();
    } catch (error) {
      logger.warn(
        { err: error },
        'moving dead letters from the broker failed; trying again after the interval',
      );
    }
    if (!stopped) {
      timer = setTimeout(() => {
        running = loop();
      }, intervalMs);
    }
  }

  return {
    absorb,
    republish,
    start() {
      if (!stopped) return;
      stopped = false;
      running = loop();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      const last = link;
      link = null;
      await last?.channel.close().catch(() => {});
      await last?.connection.close().catch(() => {});
    },
  };
}

export type DeadLetterKeeper = ReturnType<typeof createDeadLetterKeeper>;
