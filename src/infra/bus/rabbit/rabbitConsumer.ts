import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectBroker } from './connection.ts';
import type { ChannelModel, ConfirmChannel, ConsumeMessage, Message } from 'amqplib';
import pRetry from 'p-retry';
import type { Consumer } from '../../../app/messages.ts';
import { NO_METRICS } from '../../../app/ports/metrics.ts';
import type { Metrics } from '../../../app/ports/metrics.ts';
import { parseJsonBody } from '../../../app/messageSchema.ts';
import { isDatabaseUnavailable } from '../../db/port.ts';
import type { Logger } from '../../logger.ts';
import { admit, backoffDelay, DEFAULT_DELIVERY_LIMIT, failureVerdict } from '../deliveryPolicy.ts';
import type { DeadLetterReason } from '../deliveryPolicy.ts';
import { createDatabaseOutage } from '../outage.ts';
import { DELIVERY_COUNT, HEADERS, headerCount, publishCopy } from './messageCopies.ts';
import { deadLetterQueueOf, declareTopology, TOPOLOGY } from './topology.ts';
import { aboutOrder, handleTraced } from '../messageTracing.ts';
import type { Topology, TopologyOptions } from './topology.ts';

export interface RabbitConsumerOptions {
  readonly amqpUrl: string;
  readonly logger: Logger;
  readonly consumer: Consumer;
  /** The queue to consume: one of the topology's queues. */
  readonly queue: string;
  /** Declared at every (re)connect (default {@link TOPOLOGY}). */
  readonly topology?: Topology;
  /** Its delivery limit is also this consumer's (default 5). */
  readonly topologyOptions?: TopologyOptions;
  /** Unacked messages at once (default 32): handlers in flight, bounded. */
  readonly prefetch?: number;
  /** Backoff before a failed message is delivered again: doubles from min to max (100 ms, 5 s). */
  readonly retryMinDelayMs?: number;
  readonly retryMaxDelayMs?: number;
  /** Backoff between connection attempts: doubles from min to max (100 ms, 5 s). */
  readonly reconnectMinDelayMs?: number;
  readonly reconnectMaxDelayMs?: number;
  /** Longest wait for the confirm of a dead letter or retry copy (default 5 s). */
  readonly confirmTimeoutMs?: number;
  /** `connection_name` client property: names the connection in the management UI and rabbitmqctl. */
  readonly connectionName?: string;
  /** Counts deliveries, redeliveries and dead letters (none when unset). */
  readonly metrics?: Metrics;
}

/** What the consumer has done since it was created (for tests, benches and metrics). */
export interface RabbitConsumerCounters {
  /** Messages whose handler resolved, acked. */
  handled: number;
  /** Copies published to the dead-letter exchange (then the original acked). */
  deadLettered: number;
  /** Transient failures requeued plus RetryLater copies republished. */
  retried: number;
  /** Deliveries the broker flagged as redelivered (after a nack, a lost connection, a restart). */
  redeliveries: number;
  /** Successful connections, the first one included. */
  connections: number;
}

export { HEADERS } from './messageCopies.ts';

/** One connection and its confirm channel; deliveries are acked on the channel they came on. */
interface Link {
  readonly connection: ChannelModel;
  readonly channel: ConfirmChannel;
  /** Publish ids the broker returned as unroutable (see messageCopies.ts). */
  readonly returned: Set<string>;
  open: boolean;
  consumerTag?: string;
}

/**
 * Roles `saga` and `notifier`: consumes one queue and hands each message to `consumer`, under the
 * delivery contract of ../../../app/messages.ts (decisions in ../deliveryPolicy.ts):
 * - every body is parsed and validated before `handle`; an invalid message is published to the
 *   dead-letter exchange under `<queue>.dead` with its reason in {@link HEADERS}, confirmed, and
 *   only then acked — never requeued;
 * - acked only after `handle` resolved (the handler commits its effects and processed_events);
 * - a transient failure waits a backoff by the queue's `x-delivery-count`, then is nacked with
 *   requeue; the delivery that reaches the limit is dead-lettered here with the last error, and
 *   the queue's own `x-delivery-limit` stays the backstop;
 * - RetryLaterError: after a backoff a copy goes back to the queue (confirmed, counter header
 *   incremented, delivery count starting afresh) and the original is acked: no limit;
 * - a dropped connection or a broker restart: reconnect with backoff, re-declare the topology,
 *   consume again; messages unacked at the drop come again and the consumer deduplicates them.
 * A copy that cannot be confirmed (timeout, returned, channel lost) leaves the original unacked and
 * drops the connection, so the broker redelivers it to a fresh channel with a re-declared topology.
 */
export function createRabbitConsumer(options: RabbitConsumerOptions) {
  const { consumer, queue, logger } = options;
  const topo = options.topology ?? TOPOLOGY;
  if (!topo.queues.some((q) => q.name === queue))
    throw new Error(`queue ${queue} is not in the topology (${topo.queues.map((q) => q.name).join(', ')})`);
  const deliveryLimit = options.topologyOptions?.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT;
  const prefetch = options.prefetch ?? 32;
  const retryMin = options.retryMinDelayMs ?? 100;
  const retryMax = options.retryMaxDelayMs ?? 5_000;
  const confirmTimeoutMs = options.confirmTimeoutMs ?? 5_000;
  const log = logger.child({ consumer: consumer.name, queue });
  const outage = createDatabaseOutage(log);
  const metrics = options.metrics ?? NO_METRICS;

  const counters: RabbitConsumerCounters = {
    handled: 0,
    deadLettered: 0,
    retried: 0,
    redeliveries: 0,
    connections: 0,
  };
  const inFlight = new Set<Promise<void>>();
  let link: Link | null = null;
  let connecting: Promise<void> | null = null;
  let stopped = true;
  /** Aborted by stop(): ends the reconnect loop and cuts retry backoffs short. */
  let abort = new AbortController();

  async function openLink(): Promise<void> {
    const connection = await connectBroker(
      options.amqpUrl,
      options.connectionName ?? `consumer ${consumer.name}`,
    );
    try {
      const channel = await connection.createConfirmChannel();
      const current: Link = { connection, channel, returned: new Set(), open: true };
      // Without 'error' listeners a connection or channel error would crash the process.
      connection.on('error', (err: Error) => log.warn({ err }, 'broker connection error'));
      channel.on('error', (err: Error) => log.warn({ err }, 'channel error'));
      // A channel closed by the broker leaves the connection open: close it too (one recovery path).
      channel.on('close', () => void connection.close().catch(() => {}));
      connection.on('close', () => onClosed(current));
      channel.on('return', (message: Message) => {
        const id = message.properties.headers?.[HEADERS.publishId] as string | undefined;
        if (id) current.returned.add(id);
      });
      await declareTopology(channel, topo, options.topologyOptions);
      await channel.prefetch(prefetch);
      link = current;
      const { consumerTag } = await channel.consume(queue, (m) => onDelivery(current, m), { noAck: false });
      current.consumerTag = consumerTag;
      counters.connections += 1;
      log.info({ connections: counters.connections }, 'consuming');
      // stop() came while connecting: it no longer waits for this attempt, so close it here.
      if (stopped) await connection.close();
    } catch (error) {
      await connection.close().catch(() => {});
      throw error;
    }
  }

  function onClosed(closed: Link): void {
    closed.open = false;
    if (link !== closed) return;
    link = null;
    if (!stopped) {
      log.warn('broker connection closed; reconnecting');
      void reconnect();
    }
  }

  /** Connects with backoff until connected or stopped. */
  function reconnect(): Promise<void> {
    connecting ??= pRetry(openLink, {
      forever: true,
      factor: 2,
      minTimeout: options.reconnectMinDelayMs ?? 100,
      maxTimeout: options.reconnectMaxDelayMs ?? 5_000,
      signal: abort.signal,
      onFailedAttempt: (err) =>
        log.warn({ err, attempt: err.attemptNumber }, 'cannot connect to the broker; retrying'),
    })
      .catch(() => {}) // aborted by stop()
      .finally(() => {
        connecting = null;
      });
    return connecting;
  }

  function onDelivery(from: Link, message: ConsumeMessage | null): void {
    if (message === null) {
      // The broker cancelled the consumer (queue deleted): start afresh, which re-declares it.
      log.warn('consumer cancelled by the broker; reconnecting');
      void from.connection.close().catch(() => {});
      return;
    }
    // Draining (stop() was called): leave it unacked; the broker requeues it when the channel
    // closes, and no handler saw it.
    if (stopped) return;
    const headers = message.properties.headers;
    const task = aboutOrder(headers?.correlation_id, message.properties.messageId, () =>
      handleDelivery(from, message),
    )
      .catch((err: unknown) => {
        // The original stays unacked; a fresh channel gets it again.
        log.error({ err, event_id: message.properties.messageId }, 'settling a message failed; reconnecting');
        if (from.open) void from.connection.close().catch(() => {});
      })
      .finally(() => inFlight.delete(task));
    inFlight.add(task);
  }

  async function handleDelivery(from: Link, message: ConsumeMessage): Promise<void> {
    if (message.fields.redelivered) counters.redeliveries += 1;
    const attempt = headerCount(message, DELIVERY_COUNT) + 1;
    try {
      // A copy republished for a retry carries a count; one the broker redelivers, its flag.
      const redelivered =
        message.fields.redelivered || attempt > 1 || headerCount(message, HEADERS.retryLater) > 0;
      metrics.delivered(consumer.name, redelivered);
      const admitted = admit(consumer, parseJsonBody(message.content));
      await handleTraced(admitted, queue, message.properties.headers, () =>
        consumer.handle(admitted, { redelivered }),
      );
    } catch (error) {
      return onFailure(from, message, error, attempt);
    }
    settle(from, message, 'ack');
    counters.handled += 1;
    outage.succeeded();
  }

  async function onFailure(from: Link, message: ConsumeMessage, error: unknown, attempt: number) {
    const verdict = failureVerdict(error, attempt, deliveryLimit);
    const context = { err: error, event_id: message.properties.messageId as unknown, attempt };
    switch (verdict.action) {
      case 'dead-letter':
        await deadLetter(from, message, verdict, attempt);
        log.error({ ...context, reason: verdict.reason }, 'message dead-lettered');
        return;
      case 'retry-later': {
        const retries = headerCount(message, HEADERS.retryLater) + 1;
        // The database down fails every message in hand at each retry: logged once per outage,
        // and the wait ends as soon as a delivery gets through again.
        const forDatabase = isDatabaseUnavailable(error);
        if (forDatabase) outage.failed(error, { ...context, retries });
        else log.info({ ...context, retries }, 'handler asked to retry later');
        await backoff(retries, forDatabase ? outage.over : undefined);
        await publishCopy(
          from,
          { exchange: '', routingKey: queue },
          message,
          { [HEADERS.retryLater]: retries },
          confirmTimeoutMs,
        );
        settle(from, message, 'ack');
        counters.retried += 1;
        return;
      }
      case 'retry':
        log.warn(context, 'delivery failed; will retry');
        await backoff(attempt);
        settle(from, message, 'requeue');
        counters.retried += 1;
        return;
    }
  }

  async function deadLetter(
    from: Link,
    message: ConsumeMessage,
    verdict: { readonly reason: DeadLetterReason; readonly error: string },
    attempt: number,
  ): Promise<void> {
    const to = { exchange: topo.deadLetterExchange, routingKey: deadLetterQueueOf(queue) };
    const why = {
      [HEADERS.reason]: verdict.reason,
      [HEADERS.error]: verdict.error,
      [HEADERS.consumer]: consumer.name,
      [HEADERS.queue]: queue,
      [HEADERS.attempts]: attempt,
    };
    await publishCopy(from, to, message, why, confirmTimeoutMs);
    settle(from, message, 'ack');
    counters.deadLettered += 1;
    metrics.deadLettered(consumer.name);
  }

  /** Waits a retry backoff, cut short by stop() so draining does not wait on timers, or by `until`. */
  async function backoff(retry: number, until?: AbortSignal): Promise<void> {
    const signal = until ? AbortSignal.any([abort.signal, until]) : abort.signal;
    await sleep(backoffDelay(retry, retryMin, retryMax), undefined, { signal }).catch(() => {});
  }

  /** Acks or requeues on the delivery's channel; on a closed one the broker redelivers anyway. */
  function settle(on: Link, message: ConsumeMessage, how: 'ack' | 'requeue'): void {
    if (!on.open) return;
    try {
      if (how === 'ack') on.channel.ack(message);
      else on.channel.nack(message, false, true);
    } catch (err) {
      log.warn({ err }, 'channel closed before the message was settled; it will be redelivered');
    }
  }

  return {
    counters,
    /** Connects (with backoff), declares the topology and starts consuming. */
    async start(): Promise<void> {
      if (!stopped) return;
      stopped = false;
      abort = new AbortController();
      // Every message in hand may wait a backoff on this signal: up to `prefetch` listeners.
      setMaxListeners(prefetch + 10, abort.signal);
      await reconnect();
    },
    /**
     * Cancels the consumer (no new deliveries; any that were already on their way are left
     * unacked and requeued at the close), lets in-flight handlers finish and settle their
     * messages, then closes the channel and only then the connection: on quorum queues (RabbitMQ
     * 3.10, checked here) acks sent just before a bare connection close are dropped and the
     * messages requeued, while a channel close waits for them.
     */
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      const consuming = link;
      if (consuming?.open && consuming.consumerTag)
        await consuming.channel.cancel(consuming.consumerTag).catch(() => {});
      abort.abort();
      await connecting;
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      for (const last of new Set([consuming, link])) {
        await last?.channel.close().catch(() => {});
        await last?.connection.close().catch(() => {});
      }
      link = null;
    },
    /** True while connected to the broker and consuming. */
    get connected(): boolean {
      return link?.open === true;
    },
    /** Messages being handled (or backing off) right now. */
    get inFlight(): number {
      return inFlight.size;
    },
  };
}

/** A running RabbitMQ consumer (see {@link createRabbitConsumer}). */
export type RabbitConsumer = ReturnType<typeof createRabbitConsumer>;
