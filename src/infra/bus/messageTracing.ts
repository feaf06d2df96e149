import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { contextFrom, traceCarrier, tracer } from '../../app/tracing.ts';
import type { TraceCarrier } from '../../app/tracing.ts';
import { logContext } from '../logger.ts';

/** An outbox row or a message: what the spans of its publishing and handling are named by. */
interface Traced {
  readonly event_id: string;
  readonly event_type: string;
  readonly aggregate_id: string;
  readonly metadata: unknown;
}

const correlationOf = (message: Traced): string | undefined => {
  const id = (message.metadata as { correlation_id?: unknown } | null)?.correlation_id;
  return typeof id === 'string' ? id : undefined;
};

/**
 * A PRODUCER span for publishing an outbox row, child of the trace context stored with its event
 * (the relay publishes later, often in another process); `headers` carry the span's own context
 * to the consumers. Tracing off: a no-op span and no headers.
 */
export function publishSpan(
  row: Traced,
  destination: string,
): { headers: TraceCarrier; end(error?: string): void } {
  const parent = contextFrom(row.metadata);
  const span = tracer.startSpan(
    `${row.event_type} publish`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'rabbitmq',
        'messaging.operation.type': 'publish',
        'messaging.destination.name': destination,
        'messaging.message.id': row.event_id,
        'order.id': correlationOf(row) ?? row.aggregate_id,
      },
    },
    parent,
  );
  return {
    headers: traceCarrier(trace.setSpan(parent, span)),
    end(error) {
      if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      span.end();
    },
  };
}

/**
 * Hands a message to its consumer inside a CONSUMER span, child of the context in `headers` (the
 * publish span) or else of the one stored with the event (the in-process bus has no publish).
 */
export function handleTraced<T>(
  message: Traced,
  queue: string,
  headers: unknown,
  handle: () => Promise<T>,
): Promise<T> {
  const fromHeaders = contextFrom(headers);
  const parent = trace.getSpanContext(fromHeaders) ? fromHeaders : contextFrom(message.metadata);
  const orderId = correlationOf(message) ?? message.aggregate_id;
  const span = tracer.startSpan(
    `${queue} process`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.system': 'rabbitmq',
        'messaging.operation.type': 'process',
        'messaging.destination.name': queue,
        'messaging.message.id': message.event_id,
        'order.id': orderId,
      },
    },
    parent,
  );
  const run = async () => {
    try {
      return await handle();
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  };
  return context.with(trace.setSpan(parent, span), run);
}

/**
 * Runs the handling of a delivery (the handler, the retries, the dead-lettering) with the order's
 * id and the event's on every log line: the correlation id is the order id for every event.
 */
export function aboutOrder<T>(orderId: unknown, eventId: unknown, work: () => T): T {
  const fields: Record<string, string> = {};
  if (typeof orderId === 'string') fields.order_id = orderId;
  if (typeof eventId === 'string') fields.event_id = eventId;
  return logContext(fields, work);
}
