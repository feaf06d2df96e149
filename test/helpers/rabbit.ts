import { randomUUID } from 'node:crypto';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type { Database } from '../../src/app/ports/database.ts';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import { migrate } from '../../src/infra/migrations.ts';

export const AMQP_URL = process.env.AMQP_URL;

/**
 * A migrated database of its own beside DATABASE_URL's, dropped by `drop`: a relay claims every
 * unpublished row, so relay tests must neither publish other files' rows nor see them.
 */
export async function scratchPostgres(url: string, label: string) {
  const admin = postgresDatabase(url, { max: 1 });
  const name = `${label}_${process.pid}_${randomUUID().slice(0, 8)}`;
  await admin.exec(`CREATE DATABASE ${name}`);
  const target = new URL(url);
  target.pathname = `/${name}`;
  const db: Database = postgresDatabase(target.toString(), { max: 10 });
  await migrate(db);
  return {
    db,
    url: target.toString(),
    async drop(): Promise<void> {
      await db.close();
      await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.close();
    },
  };
}

/** Messages arriving on a queue, with a bounded wait for a condition on them (no fixed sleeps). */
export interface Collector {
  readonly messages: ConsumeMessage[];
  /** Resolves once `done(messages)` holds; rejects after `timeoutMs` with `what` in the error. */
  waitFor(
    done: (messages: readonly ConsumeMessage[]) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<void>;
  close(): Promise<void>;
}

/**
 * An exclusive, auto-deleted queue bound to `exchange` under `patterns`, consumed with auto-ack.
 * It disappears with its channel, so nothing is left on the broker.
 */
export async function collect(
  connection: ChannelModel,
  exchange: string,
  patterns: readonly string[],
): Promise<Collector & { readonly channel: Channel; readonly queue: string }> {
  const channel = await connection.createChannel();
  const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
  for (const pattern of patterns) await channel.bindQueue(queue, exchange, pattern);
  return { ...(await consumeQueue(channel, queue, { noAck: true })), channel, queue };
}

/**
 * Consumes an existing queue on `channel`; with `noAck: false`, `onMessage` decides each
 * message's fate (ack, nack) after it is recorded.
 */
export async function consumeQueue(
  channel: Channel,
  queue: string,
  options: { readonly noAck: boolean; readonly onMessage?: (message: ConsumeMessage) => void },
): Promise<Collector> {
  const messages: ConsumeMessage[] = [];
  const waiters = new Set<() => void>();
  await channel.consume(
    queue,
    (message) => {
      if (!message) return;
      messages.push(message);
      options.onMessage?.(message);
      for (const check of waiters) check();
    },
    { noAck: options.noAck },
  );
  return {
    messages,
    waitFor(done, what, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!done(messages)) return;
          cleanup();
          resolve();
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async close() {
      await channel.close().catch(() => {});
    },
  };
}

/** The parsed JSON body of a message. */
export function bodyOf(message: ConsumeMessage): Record<string, unknown> {
  return JSON.parse(message.content.toString()) as Record<string, unknown>;
}
