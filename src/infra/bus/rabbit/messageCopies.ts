import { randomUUID } from 'node:crypto';
import type { ConfirmChannel, Message, Options } from 'amqplib';
import { errorText } from '../deliveryPolicy.ts';

/**
 * Headers the RabbitMQ consumer writes on the copies it publishes. A dead letter keeps the original's
 * headers and properties and adds why it died; RabbitMQ's own `x-death` is left to the broker's
 * backstop (a message dead-lettered by the queue's delivery limit carries `x-death` instead).
 */
export const HEADERS = {
  /** Why: `invalid-message` | `poison` | `delivery-limit` (see deliveryPolicy.ts). */
  reason: 'x-dead-letter-reason',
  /** The validation problems or the handler's (last) error, as text. */
  error: 'x-error',
  /** The consumer that gave up on it and its queue. */
  consumer: 'x-dead-lettered-by',
  queue: 'x-original-queue',
  /** Deliveries to this consumer, the last one included. */
  attempts: 'x-attempts',
  /** Times the message was put back because its handler asked to retry later (RetryLaterError). */
  retryLater: 'x-retry-later-count',
  /** Matches a basic.return to its publish (the message id is shared by every copy). */
  publishId: 'x-publish-id',
} as const;

/** Header counting how many times an operator sent a message back from the dead letters. */
export const REDRIVEN = 'x-redriven-count';

/** Set by quorum queues on redelivery: failed deliveries so far (absent on the first). */
export const DELIVERY_COUNT = 'x-delivery-count';

/** A confirm channel with the publish ids the broker returned on it (its 'return' listener fills it). */
export interface CopyChannel {
  readonly channel: ConfirmChannel;
  readonly returned: Set<string>;
}

/** A numeric header of a delivery (a counter), 0 when absent or not a positive number. */
export function headerCount(message: Message, header: string): number {
  const value = Number(message.properties.headers?.[header] ?? 0);
  return Number.isFinite(value) && value > 0 ? value : 0;
}

/** The original's properties worth keeping on a copy. */
function copiedProperties(message: Message): Options.Publish {
  const { contentType, contentEncoding, messageId, type, appId, correlationId, timestamp } =
    message.properties as Options.Publish;
  return { contentType, contentEncoding, messageId, type, appId, correlationId, timestamp };
}

/**
 * Publishes a copy of `message` (properties and headers kept, `extra` headers added, the
 * broker's delivery count dropped so the copy starts afresh) and waits for its confirm. Rejects
 * when the broker returns it (unroutable: published mandatory, so a missing queue cannot drop it
 * silently), nacks it, or does not confirm within `confirmTimeoutMs`: a confirm can hang forever
 * on a dropped connection.
 */
export async function publishCopy(
  via: CopyChannel,
  to: { readonly exchange: string; readonly routingKey: string },
  message: Message,
  extra: Record<string, unknown>,
  confirmTimeoutMs: number,
): Promise<void> {
  const publishId = randomUUID();
  const original = (message.properties.headers ?? {}) as Record<string, unknown>;
  const { [DELIVERY_COUNT]: _count, ...headers } = original;
  const properties: Options.Publish = {
    ...copiedProperties(message),
    persistent: true,
    mandatory: true,
    headers: { ...headers, ...extra, [HEADERS.publishId]: publishId },
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const confirmed = new Promise<void>((resolve, reject) => {
    via.channel.publish(to.exchange, to.routingKey, message.content, properties, (err) => {
      // basic.return precedes the confirm of the same message, so `returned` is up to date here.
      if (err) reject(err instanceof Error ? err : new Error(errorText(err)));
      else if (via.returned.delete(publishId))
        reject(new Error(`${to.exchange}/${to.routingKey} returned it`));
      else resolve();
    });
  });
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no confirm within ${confirmTimeoutMs} ms`)), confirmTimeoutMs);
  });
  try {
    await Promise.race([confirmed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
