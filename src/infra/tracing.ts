import { context, trace } from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Logger } from './logger.ts';

/**
 * Whether tracing is on, by the standard OpenTelemetry variables: off by default; on when
 * OTEL_TRACES_EXPORTER names an exporter other than `none`, or when an OTLP endpoint is set
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); OTEL_SDK_DISABLED=true
 * turns it off whatever else is set.
 */
export function tracingRequested(env: Record<string, string | undefined>): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporter = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase();
  if (exporter) return exporter !== 'none';
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/** What the SDK's span exporters have in common, for tests that pass their own (InMemorySpanExporter). */
export type SpanExporterLike = SpanExporter;

export interface RunningTracing {
  /** Exports the spans still buffered (bounded by the exporter's timeout) and stops the SDK. */
  shutdown(): Promise<void>;
  /** Exports the spans still buffered, and keeps tracing. */
  flush(): Promise<void>;
}

const SUPPORTED = 'otlp or console (or none)';

/** The span exporter OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL name. */
async function exporterFrom(env: Record<string, string | undefined>): Promise<SpanExporterLike> {
  const names = (env.OTEL_TRACES_EXPORTER ?? 'otlp')
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter((n) => n.length > 0 && n !== 'none');
  if (names.length !== 1)
    throw new Error(
      `OTEL_TRACES_EXPORTER: name one exporter, ${SUPPORTED} (got "${env.OTEL_TRACES_EXPORTER}")`,
    );
  const [name] = names;
  if (name === 'console') {
    const { ConsoleSpanExporter } = await import('@opentelemetry/sdk-trace-base');
    return new ConsoleSpanExporter();
  }
  if (name !== 'otlp')
    throw new Error(`OTEL_TRACES_EXPORTER: "${name}" is not supported here; use ${SUPPORTED}`);
  const protocol = (
    env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ??
    env.OTEL_EXPORTER_OTLP_PROTOCOL ??
    'http/protobuf'
  ).trim();
  // The exporters read their endpoint, headers, timeout and compression from OTEL_* themselves.
  if (protocol === 'http/protobuf') {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
    return new OTLPTraceExporter();
  }
  if (protocol === 'http/json') {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    return new OTLPTraceExporter();
  }
  throw new Error(
    `OTEL_EXPORTER_OTLP_PROTOCOL: "${protocol}" is not supported here; use http/protobuf (the default) or http/json`,
  );
}

/**
 * Starts the OpenTelemetry SDK when the OTEL_* variables ask for it (see {@link tracingRequested})
 * or a test passes an exporter; otherwise loads nothing and returns undefined, and the API's no-op
 * tracer stays in place. Registers the tracer provider globally with W3C trace context
 * propagation and an AsyncLocalStorage context manager (which Deno provides too).
 * The resource: service.name market-order-saga unless OTEL_SERVICE_NAME or
 * OTEL_RESOURCE_ATTRIBUTES say otherwise; the sampler and batching follow OTEL_TRACES_SAMPLER
 * and OTEL_BSP_* (read by the SDK). Loaded only when on: off, the SDK costs no start-up time.
 */
export async function startTracing(
  env: Record<string, string | undefined>,
  logger: Logger,
  options: { exporter?: SpanExporterLike } = {},
): Promise<RunningTracing | undefined> {
  if (!options.exporter && !tracingRequested(env)) return undefined;
  const exporter = options.exporter ?? (await exporterFrom(env));
  const [{ NodeTracerProvider }, { BatchSpanProcessor, SimpleSpanProcessor }, resources] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/resources'),
  ]);
  const resource = resources
    .resourceFromAttributes({ 'service.name': 'market-order-saga' })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new NodeTracerProvider({
    resource,
    // A test's exporter sees each span as it ends; a real one gets them in batches.
    spanProcessors: [options.exporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter)],
  });
  provider.register();
  logger.info(
    {
      exporter: options.exporter ? 'given' : (env.OTEL_TRACES_EXPORTER ?? 'otlp'),
      endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT,
    },
    'tracing on (OpenTelemetry)',
  );
  return {
    flush: () => provider.forceFlush(),
    async shutdown() {
      await provider.shutdown();
      trace.disable();
      context.disable();
    },
  };
}

/** The active span's ids for a log line, when one is recording (tracing on); else nothing. */
export function activeTraceIds(): Readonly<Record<string, string>> | undefined {
  const span = trace.getActiveSpan();
  if (!span?.isRecording()) return undefined;
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}
