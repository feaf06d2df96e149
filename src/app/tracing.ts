import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Attributes, Context, Span } from '@opentelemetry/api';
import type { PriceService, TradeVenue } from './ports.ts';

/**
 * Traces through the OpenTelemetry API only: until src/infra/tracing.ts registers the SDK (when
 * OTEL_* variables ask for it) every call here goes to the API's no-op tracer and propagator,
 * which record nothing and inject nothing, so tracing off costs next to nothing per order.
 */
export const tracer = trace.getTracer('market-order-saga');

export { SpanKind };

/** W3C trace context fields, as they ride event metadata and message headers. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

/**
 * The active trace context as W3C `traceparent` / `tracestate`, for an event's metadata: the
 * relay, in another process and later, continues the order's trace from it. Empty (and nothing
 * is added to the metadata) when tracing is off or no span is active.
 */
export function traceCarrier(from: Context = context.active()): TraceCarrier {
  const carrier: TraceCarrier = {};
  propagation.inject(from, carrier);
  return carrier;
}

/** The context a carrier (event metadata, message headers) names; the root one when it names none. */
export function contextFrom(carrier: unknown): Context {
  if (carrier === null || typeof carrier !== 'object') return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, carrier);
}

/** True while a span is active: work done now already belongs to a trace. */
export const inTrace = (): boolean => trace.getSpan(context.active()) !== undefined;

/**
 * Runs `work` in a new span, child of `parent` (default: the active context), ending it when
 * `work` settles; a throw marks the span as an error and is rethrown.
 */
export function inSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  work: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = options.parent ?? context.active();
  return tracer.startActiveSpan(
    name,
    {
      kind: options.kind ?? SpanKind.INTERNAL,
      ...(options.attributes ? { attributes: options.attributes } : {}),
    },
    parent,
    async (span) => {
      try {
        return await work(span);
      } catch (error) {
        span.recordException(error as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

/** Each call of `fn` in a CLIENT span named `name`: one span per call to the outside world. */
function traced<A extends unknown[], R>(name: string, fn: (...args: A) => Promise<R>) {
  return (...args: A): Promise<R> => inSpan(name, { kind: SpanKind.CLIENT }, () => fn(...args));
}

/**
 * The price service and venue with a span around every call (a retried call is one span per
 * attempt). Wired only when tracing is on, so that off it costs not even the wrapper.
 */
export function tracedOutsideWorld(world: { prices: PriceService; venue: TradeVenue }): {
  prices: PriceService;
  venue: TradeVenue;
} {
  const { prices, venue } = world;
  return {
    prices: {
      ...prices,
      getMarketPrice: traced('prices getMarketPrice', prices.getMarketPrice.bind(prices)),
    },
    venue: {
      ...venue,
      executeSwap: traced('venue executeSwap', venue.executeSwap.bind(venue)),
      findSwap: traced('venue findSwap', venue.findSwap.bind(venue)),
      voidSwap: traced('venue voidSwap', venue.voidSwap.bind(venue)),
    },
  };
}

/** A span as the saga runner marks it with a step's outcome. */
export type StepSpan = Pick<Span, 'setAttributes'>;

/**
 * The parent of work on an order: the active span when there is one (a consumer's delivery),
 * else the trace context stored with the order's latest event (a sweeper's run, a restart), so
 * the order keeps one trace.
 */
export function traceParent(metadata: unknown): Context {
  return inTrace() ? context.active() : contextFrom(metadata);
}

/** A span for work that took no time of its own (a pure saga step decided in a batch). */
export function recordStep(name: string, attributes: Attributes): void {
  tracer.startSpan(name, { attributes }).end();
}
