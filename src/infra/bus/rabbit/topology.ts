import type { Channel } from 'amqplib';

/** A consumer's queue and the event types (routing keys) bound to it on the events exchange. */
export interface QueueSpec {
  readonly name: string;
  readonly routingKeys: readonly string[];
}

/** Every name the service declares on the broker; as data so publishers and consumers share it. */
export interface Topology {
  /** Durable topic exchange; routing key = event type. */
  readonly exchange: string;
  /** Direct exchange that receives each queue's dead letters under `<queue>.dead`. */
  readonly deadLetterExchange: string;
  readonly queues: readonly QueueSpec[];
}

/** Consumer queues of the service, by name, with the event types each receives. */
export const QUEUES = {
  sagaOrderAccepted: { name: 'saga.order-accepted', routingKeys: ['OrderAccepted'] },
  notifications: { name: 'notifications', routingKeys: ['OrderCompleted', 'OrderFailed'] },
} as const satisfies Record<string, QueueSpec>;

/**
 * The topology under an optional name prefix. Production uses no prefix; tests and benches pass
 * one so they can publish and inspect without touching (or being disturbed by) the real queues.
 */
export function topology(options: { readonly prefix?: string } = {}): Topology {
  const prefix = options.prefix ?? '';
  return {
    exchange: `${prefix}events`,
    deadLetterExchange: `${prefix}events.dlx`,
    queues: Object.values(QUEUES).map((q) => ({ name: `${prefix}${q.name}`, routingKeys: q.routingKeys })),
  };
}

/** The service's topology: exchange `events`, DLX `events.dlx`, queues of {@link QUEUES}. */
export const TOPOLOGY: Topology = topology();

/** Name of a queue's dead-letter queue, which is also its dead-letter routing key. */
export function deadLetterQueueOf(queue: string): string {
  return `${queue}.dead`;
}

export interface TopologyOptions {
  /**
   * Deliveries of one message before the queue dead-letters it instead of requeueing (default 5):
   * a poison message never loops. Changing it on an existing queue fails the declaration
   * (PRECONDITION_FAILED); change a live queue's limit with a policy instead.
   */
  readonly deliveryLimit?: number;
  /**
   * `at-least-once` (default) keeps a dead letter in the source queue until the dead-letter
   * queue confirms it; `at-most-once` may lose it if the DLX route fails. RabbitMQ's default is
   * at-most-once, which the architecture rules out for poison messages we must keep.
   */
  readonly deadLetterStrategy?: 'at-least-once' | 'at-most-once';
}

export const DEFAULT_DELIVERY_LIMIT = 5;

/** The `x-` arguments of a consumer queue: quorum, dead-lettering, delivery limit. */
export function queueArguments(
  queue: string,
  topo: Topology,
  options: TopologyOptions = {},
): Record<string, unknown> {
  const strategy = options.deadLetterStrategy ?? 'at-least-once';
  return {
    'x-queue-type': 'quorum',
    'x-dead-letter-exchange': topo.deadLetterExchange,
    'x-dead-letter-routing-key': deadLetterQueueOf(queue),
    'x-delivery-limit': options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT,
    'x-dead-letter-strategy': strategy,
    // at-least-once dead-lettering is only honoured with reject-publish overflow; RabbitMQ
    // silently falls back to at-most-once otherwise.
    ...(strategy === 'at-least-once' ? { 'x-overflow': 'reject-publish' } : {}),
  };
}

/**
 * Declares exchanges, queues, dead-letter queues and bindings. Idempotent: every process runs it
 * at start and after each reconnect, and a declaration identical to what exists is a no-op.
 */
export async function declareTopology(
  channel: Channel,
  topo: Topology = TOPOLOGY,
  options: TopologyOptions = {},
): Promise<void> {
  await channel.assertExchange(topo.exchange, 'topic', { durable: true });
  await channel.assertExchange(topo.deadLetterExchange, 'direct', { durable: true });
  for (const queue of topo.queues) {
    const dead = deadLetterQueueOf(queue.name);
    // Dead letters are kept for inspection, not consumed in a loop: a durable quorum queue too,
    // so they survive a broker restart.
    await channel.assertQueue(dead, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await channel.bindQueue(dead, topo.deadLetterExchange, dead);
    await channel.assertQueue(queue.name, {
      durable: true,
      arguments: queueArguments(queue.name, topo, options),
    });
    for (const key of queue.routingKeys) await channel.bindQueue(queue.name, topo.exchange, key);
  }
}

/** Deletes what {@link declareTopology} declared (tests and benches with a prefixed topology). */
export async function deleteTopology(channel: Channel, topo: Topology): Promise<void> {
  for (const queue of topo.queues) {
    await channel.deleteQueue(queue.name);
    await channel.deleteQueue(deadLetterQueueOf(queue.name));
  }
  await channel.deleteExchange(topo.exchange);
  await channel.deleteExchange(topo.deadLetterExchange);
}
