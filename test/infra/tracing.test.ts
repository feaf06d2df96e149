import { randomUUID } from 'node:crypto';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { deleteTopology, topology } from '../../src/infra/bus/rabbit/topology.ts';
import { silentLogger } from '../../src/infra/logger.ts';
import { startTracing, tracingRequested } from '../../src/infra/tracing.ts';
import type { RunningTracing } from '../../src/infra/tracing.ts';
import { startService } from '../../src/service.ts';
import { DATABASE_URL, migratedPglite } from '../helpers/databases.ts';
import { AMQP_URL, scratchPostgres } from '../helpers/rabbit.ts';
import { until } from '../helpers/wait.ts';

const exporter = new InMemorySpanExporter();
let tracing: RunningTracing | undefined;

beforeAll(async () => {
  tracing = await startTracing({}, silentLogger, { exporter });
});
afterAll(async () => {
  await tracing?.shutdown();
});

/** Places an order over HTTP and waits for its read model to say it ended. */
async function placeAndFinish(url: string): Promise<string> {
  const res = await fetch(`${url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      user_id: `user-${randomUUID()}`,
      from_amount: '1000',
      from_currency: 'USDT',
      to_currency: 'BTC',
      order_type: 'market',
    }),
  });
  expect(res.status).toBe(202);
  const { order_id: orderId } = (await res.json()) as { order_id: string };
  await until(async () => {
    const order = await fetch(`${url}/orders/${orderId}`);
    if (!order.ok) return void (await order.body?.cancel());
    return ((await order.json()) as { status: string }).status === 'completed';
  }, `order ${orderId} to complete`);
  return orderId;
}

/** The spans of the order's trace, once the notification of its end is among them. */
async function traceOf(orderId: string, last: string): Promise<ReadableSpan[]> {
  return until(() => {
    const spans = exporter.getFinishedSpans();
    const http = spans.find(
      (s) => s.name === 'POST /orders' && spans.some((o) => o.attributes['order.id'] === orderId),
    );
    const ofOrder = spans.filter((s) => s.attributes['order.id'] === orderId);
    const traceId = ofOrder[0]?.spanContext().traceId;
    if (!http || !traceId || !spans.some((s) => s.name === last && s.attributes['order.id'] === orderId))
      return false;
    return spans.filter((s) => s.spanContext().traceId === traceId);
  }, `the spans of order ${orderId}`);
}

function byName(spans: readonly ReadableSpan[], name: string, orderId?: string): ReadableSpan {
  const span = spans.find((s) => s.name === name && (!orderId || s.attributes['order.id'] === orderId));
  if (!span) throw new Error(`no span ${name} among ${spans.map((s) => s.name).join(', ')}`);
  return span;
}

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const idOf = (span: ReadableSpan) => span.spanContext().spanId;

describe('when tracing is asked for by the OTEL_* variables', () => {
  it('is on for an exporter or an OTLP endpoint, off by default, for none and when the SDK is disabled', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(true);
    expect(
      tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' }),
    ).toBe(false);
  });

  it('refuses an exporter it does not have, naming the ones it has', async () => {
    await expect(startTracing({ OTEL_TRACES_EXPORTER: 'zipkin' }, silentLogger)).rejects.toThrow(
      /OTEL_TRACES_EXPORTER: "zipkin" is not supported here; use otlp or console/,
    );
    await expect(
      startTracing({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, silentLogger),
    ).rejects.toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported/);
  });
});

describe('when an order goes through the embedded service with tracing on', () => {
  let db: Database;
  let service: Awaited<ReturnType<typeof startService>>;

  beforeAll(async () => {
    db = await migratedPglite();
    const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', OTEL_TRACES_EXPORTER: 'otlp' });
    service = await startService({ config, logger: silentLogger, db });
  }, 60_000);
  afterAll(async () => {
    await service?.stop();
    await db?.close();
  });

  it('records one trace: the request, the delivery, every saga step and every outside call, each under its parent', async () => {
    const orderId = await placeAndFinish(service.url ?? '');
    const spans = await traceOf(orderId, 'notifier process');

    const http = byName(spans, 'POST /orders');
    expect(parentOf(http)).toBeUndefined();
    // No broker: the delivery continues from the trace context stored with OrderAccepted.
    const consume = byName(spans, 'saga-orchestrator process', orderId);
    expect(parentOf(consume)).toBe(idOf(http));
    const quoting = byName(spans, 'saga quotingPrice', orderId);
    expect(parentOf(quoting)).toBe(idOf(consume));
    expect(quoting.attributes['saga.step.outcome']).toBe('done');
    expect(parentOf(byName(spans, 'prices getMarketPrice'))).toBe(idOf(quoting));
    // Steps that call nothing outside run in the batch of the step before them.
    expect(parentOf(byName(spans, 'saga openingPosition', orderId))).toBe(idOf(quoting));
    expect(parentOf(byName(spans, 'saga sendingSwap', orderId))).toBe(idOf(quoting));
    const swapping = byName(spans, 'saga awaitingOutcome', orderId);
    expect(parentOf(swapping)).toBe(idOf(consume));
    expect(parentOf(byName(spans, 'venue executeSwap'))).toBe(idOf(swapping));
    expect(parentOf(byName(spans, 'saga completing', orderId))).toBe(idOf(swapping));
    // OrderCompleted was stored in the swap's batch: the notifier continues from there.
    expect(parentOf(byName(spans, 'notifier process', orderId))).toBe(idOf(swapping));
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
  });
});

describe.runIf(DATABASE_URL && AMQP_URL)(
  'when an order goes through PostgreSQL and RabbitMQ with tracing on',
  () => {
    let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
    let service: Awaited<ReturnType<typeof startService>>;
    const prefix = `trace-${randomUUID().slice(0, 8)}.`;

    beforeAll(async () => {
      scratch = await scratchPostgres(DATABASE_URL ?? '', 'trace');
      const config = loadConfig({
        HOST: '127.0.0.1',
        PORT: '0',
        DATABASE_URL: scratch.url,
        AMQP_URL,
        AMQP_PREFIX: prefix,
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
      });
      service = await startService({ config, logger: silentLogger, db: scratch.db });
    }, 60_000);
    afterAll(async () => {
      await service?.stop();
      await scratch?.drop();
      const connection = await connect(AMQP_URL ?? '');
      await deleteTopology(await connection.createChannel(), topology({ prefix })).catch(() => {});
      await connection.close();
    });

    it('carries the trace across the broker: request, relay publish, consume, steps and outside calls', async () => {
      const orderId = await placeAndFinish(service.url ?? '');
      const spans = await traceOf(orderId, `${prefix}notifications process`);

      const http = byName(spans, 'POST /orders');
      expect(parentOf(http)).toBeUndefined();
      // The relay published later, from another async chain: its parent came from the outbox row.
      const published = byName(spans, 'OrderAccepted publish', orderId);
      expect(parentOf(published)).toBe(idOf(http));
      expect(published.kind).toBe(3); // PRODUCER
      // The consumer's parent came from the message headers.
      const consume = byName(spans, `${prefix}saga.order-accepted process`, orderId);
      expect(parentOf(consume)).toBe(idOf(published));
      expect(consume.kind).toBe(4); // CONSUMER
      const quoting = byName(spans, 'saga quotingPrice', orderId);
      expect(parentOf(quoting)).toBe(idOf(consume));
      expect(parentOf(byName(spans, 'prices getMarketPrice'))).toBe(idOf(quoting));
      const swapping = byName(spans, 'saga awaitingOutcome', orderId);
      expect(parentOf(swapping)).toBe(idOf(consume));
      expect(parentOf(byName(spans, 'venue executeSwap'))).toBe(idOf(swapping));
      const completedPublish = byName(spans, 'OrderCompleted publish', orderId);
      expect(parentOf(completedPublish)).toBe(idOf(swapping));
      expect(parentOf(byName(spans, `${prefix}notifications process`, orderId))).toBe(idOf(completedPublish));
    });
  },
);
