import { FAILURE_REASONS, SAGA_STEPS } from '../app/messageSchema.ts';
import { z } from 'zod';
import type { FailureReason, SagaStep } from '../domain/events.ts';

/**
 * The API's responses as zod schemas: route handlers take their types from here, and
 * src/http/openapi.ts documents them, so the document and the handlers share one definition.
 * Request bodies are documented from the validators' own schemas (orderRequest.ts,
 * channelsRequest.ts); the query parameters of the lists are here.
 */

/** Ids handed out by the service: 8-4-4-4-12 hex (the store's `uuid` column). */
export const idText = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i)
  .meta({ format: 'uuid', examples: ['0b7d2c1e-7f4a-4c2e-9a51-3f0f6d1e8a42'] });

/** Amounts and prices leave the service as decimal strings: no float ever stands between. */
const decimalText = z
  .string()
  .regex(/^\d+(\.\d+)?$/)
  .meta({ description: 'A decimal number as a string (never a JSON number: no digit is lost)' });

const currencyCode = z
  .string()
  .regex(/^[A-Z][A-Z0-9]{1,9}$/)
  .meta({ examples: ['USDT', 'BTC'] });

const time = z.iso.datetime({ offset: true }).meta({ description: 'An ISO-8601 time' });

/** The last event of the aggregate's stream that the view applied (1, 2, …). */
const streamVersion = z.int().min(1);

const failureReason = z.enum(Object.keys(FAILURE_REASONS) as [FailureReason, ...FailureReason[]]);
const sagaStep = z.enum(Object.keys(SAGA_STEPS) as [SagaStep, ...SagaStep[]]);

export const ORDER_STATUSES = ['pending', 'processing', 'completed', 'failed'] as const;
export const POSITION_STATUSES = ['open', 'closed'] as const;
export const orderStatusSchema = z.enum(ORDER_STATUSES);
export const positionStatusSchema = z.enum(POSITION_STATUSES);

/** `202` to `POST /orders`: the order is recorded, its saga runs after the answer. */
export const orderAcceptedSchema = z
  .object({
    order_id: idText,
    status: z.literal('pending'),
    message: z.string().meta({ examples: ['Order accepted and will be processed asynchronously'] }),
  })
  .meta({ id: 'OrderAccepted' });
export type OrderAccepted = z.infer<typeof orderAcceptedSchema>;

/** An order as the read model `orders_view` holds it: null where not known yet. */
export const orderViewSchema = z
  .object({
    order_id: idText,
    user_id: z.string(),
    order_type: z.literal('market'),
    status: orderStatusSchema.meta({
      description:
        'pending: accepted; processing: priced or swapping; completed: swapped and settled; failed: compensated',
    }),
    from_amount: decimalText,
    from_currency: currencyCode,
    to_currency: currencyCode,
    quoted_price: decimalText.nullable().meta({ description: 'to_currency per from_currency, as quoted' }),
    quoted_to_amount: decimalText.nullable().meta({ description: 'The amount the quote promised' }),
    executed_price: decimalText.nullable().meta({ description: 'The price the venue executed at' }),
    to_amount: decimalText.nullable().meta({ description: 'The amount received' }),
    tx_hash: z.string().nullable(),
    position_id: idText.nullable(),
    failure_reason: failureReason.nullable(),
    failed_step: sagaStep.nullable(),
    created_at: time,
    updated_at: time,
    version: streamVersion,
  })
  .meta({ id: 'OrderView', description: "An order, from the read model kept by the order's events" });
export type OrderView = z.infer<typeof orderViewSchema>;

/** A position as the read model `positions_view` holds it. */
export const positionViewSchema = z
  .object({
    position_id: idText,
    user_id: z.string(),
    status: positionStatusSchema,
    from_currency: currencyCode,
    to_currency: currencyCode,
    total_from_amount: decimalText.meta({ description: 'The sum of from_amount over its completed orders' }),
    total_to_amount: decimalText.meta({ description: 'The sum of to_amount over its completed orders' }),
    order_ids: z.array(idText),
    close_reason: z.string().nullable(),
    created_at: time,
    updated_at: time,
    version: streamVersion,
  })
  .meta({ id: 'PositionView', description: "A position, from the read model kept by the position's events" });
export type PositionView = z.infer<typeof positionViewSchema>;

const nextCursor = z
  .string()
  .nullable()
  .meta({ description: 'Pass as `cursor` for the next page; null on the last page' });

export const orderPageSchema = z
  .object({ orders: z.array(orderViewSchema), next_cursor: nextCursor })
  .meta({ id: 'OrderPage', description: 'Newest first (created_at, then id, descending)' });
export type OrderPage = z.infer<typeof orderPageSchema>;

export const positionPageSchema = z
  .object({ positions: z.array(positionViewSchema), next_cursor: nextCursor })
  .meta({ id: 'PositionPage', description: 'Newest first (created_at, then id, descending)' });
export type PositionPage = z.infer<typeof positionPageSchema>;

export const LIST_LIMIT = { default: 50, min: 1, max: 200 } as const;

/** The query of the list routes, as documented; the route handlers validate it. */
function listQuery<S extends z.ZodType>(status: S) {
  return z.object({
    status: status.optional().meta({ description: 'Only those in this status' }),
    limit: z
      .int()
      .min(LIST_LIMIT.min)
      .max(LIST_LIMIT.max)
      .default(LIST_LIMIT.default)
      .meta({ description: 'Page size' }),
    cursor: z
      .string()
      .optional()
      .meta({ description: "The previous page's next_cursor (opaque); absent for the first page" }),
  });
}
export const orderListQuerySchema = listQuery(orderStatusSchema);
export const positionListQuerySchema = listQuery(positionStatusSchema);

/** One stored event (`GET /orders/{id}/events`, `GET /positions/{id}/events`). */
export const storedEventSchema = z
  .object({
    event_id: idText,
    event_type: z.string().meta({ examples: ['OrderAccepted', 'PriceQuoted'] }),
    version: streamVersion,
    data: z.record(z.string(), z.unknown()).meta({ description: "The event's own fields" }),
    metadata: z.looseObject({
      correlation_id: idText.meta({ description: 'The order id: every event of one saga shares it' }),
      causation_id: z
        .string()
        .nullable()
        .meta({ description: 'The event or request (its X-Request-Id) that caused this one' }),
      occurred_at: time,
      schema_version: z.int().min(1),
      saga_version: z.int().min(1).optional(),
    }),
    recorded_at: time,
  })
  .meta({ id: 'StoredEvent' });

export const orderEventsSchema = z
  .object({ order_id: idText, events: z.array(storedEventSchema) })
  .meta({ id: 'OrderEvents', description: "The order's stream, oldest first" });

export const positionEventsSchema = z
  .object({ position_id: idText, events: z.array(storedEventSchema) })
  .meta({ id: 'PositionEvents', description: "The position's stream, oldest first" });

/** `GET /orders/{id}/saga` (src/app/sagaView.ts): for operators and the saga viewer. */
export const sagaViewSchema = z
  .object({
    order_id: idText,
    position_id: idText,
    state: z
      .union([z.string(), z.record(z.string(), z.unknown())])
      .meta({ description: "The machine's state value" }),
    status: z.enum(['running', 'finished']),
    saga_version: z.int().min(1).meta({ description: 'The machine version the saga runs on' }),
    pending_step: z.string().nullable().meta({ description: 'The step it waits on; null when finished' }),
    accepted_at: time.meta({ description: 'When the order was accepted' }),
    deadline: time.meta({
      description:
        'accepted_at + SAGA_DEADLINE_MS: past it no step that can compensate runs and a swap in doubt is voided; ' +
        'given also once the saga has ended',
    }),
    context: z.record(z.string(), z.unknown()),
    events: z.array(
      z.object({
        event_type: z.string(),
        stream: z.enum(['order', 'position']),
        version: streamVersion,
        recorded_at: time,
      }),
    ),
    machine: z.record(z.string(), z.unknown()).meta({
      description:
        'The graph of the machine version the saga runs on (saga_version): its root state, each state ' +
        "{ id, key, type (atomic, compound, final, …), initial (a compound state's initial child id, else null), " +
        'children (the same shape), edges ([{ source, target, label: { text: the event } }]) }',
    }),
  })
  .meta({ id: 'SagaView' });

/** `GET /orders/{id}/notifications`: what the user was told about the order, per channel. */
export const orderNotificationsSchema = z
  .object({
    order_id: idText,
    notifications: z.array(
      z.object({
        event_id: idText.meta({
          description: 'The terminal event it tells of (OrderCompleted or OrderFailed)',
        }),
        channel: z.enum(['telegram', 'email']),
        status: z.enum(['sending', 'sent', 'failed', 'skipped']).meta({
          description:
            'sending: in hand or waiting for a retry; skipped: nothing to send (no address, channel off)',
        }),
        recipient: z
          .string()
          .nullable()
          .meta({ description: 'The chat id or email address; null when none' }),
        text: z.string(),
        error: z
          .string()
          .nullable()
          .meta({ description: 'Why it failed or was skipped; the last error while retried' }),
        attempts: z.int().min(0),
        created_at: time,
        sent_at: time.nullable(),
      }),
    ),
  })
  .meta({ id: 'OrderNotifications', description: 'Oldest first; none until the order has ended' });

/** `GET` and `PUT /users/{userId}/channels`: null where none is set. */
export const userChannelsSchema = z
  .object({
    user_id: z.string(),
    telegram_chat_id: z.string().nullable(),
    email: z.string().nullable(),
    updated_at: time.nullable().meta({ description: 'When a channel last changed; null if never set' }),
  })
  .meta({ id: 'UserChannels' });

export const healthSchema = z
  .object({
    status: z.enum(['ok', 'unavailable']),
    database: z.enum(['postgres', 'pglite']),
    outbox_unpublished: z
      .int()
      .min(0)
      .optional()
      .meta({ description: 'Events not yet published to the bus: 0 when caught up' }),
  })
  .meta({ id: 'Health' });

/** `GET /ready`: each check by name, and what is down. */
export const readinessSchema = z
  .object({
    status: z.enum(['ready', 'not_ready']),
    checks: z
      .record(
        z.string(),
        z.object({
          ok: z.boolean(),
          detail: z.string().optional().meta({ description: 'What is wrong, when it is' }),
        }),
      )
      .meta({
        description:
          '`database` (answers), `migrations` (none pending), `broker` (with RabbitMQ: this ' +
          "process's connections are up)",
      }),
  })
  .meta({ id: 'Readiness' });

/** An RFC 9457 problem (src/http/problems.ts). */
export const problemSchema = z
  .object({
    type: z.string().meta({
      description:
        'urn:market-order-saga:problem:<code>, e.g. validation, malformed_json, not_found, unauthorized, ' +
        'forbidden, idempotency_key_reused, idempotency_key_in_flight, rate_limited',
      examples: ['urn:market-order-saga:problem:validation'],
    }),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    instance: z.string().optional().meta({ description: 'The request path' }),
    errors: z
      .array(
        z.object({
          field: z
            .string()
            .meta({ description: 'The field (or query parameter, or header); empty for the body' }),
          message: z.string(),
        }),
      )
      .optional()
      .meta({ description: 'Every field that failed, each with why' }),
  })
  .meta({ id: 'Problem' });

/** `Idempotency-Key` on `POST /orders` (checked in app.ts's readIdempotencyKey). */
export const idempotencyKeySchema = z
  .string()
  .regex(/^[\x21-\x7e]{1,255}$/)
  .meta({
    description:
      'Makes a retry safe: the same key with the same body answers the original response ' +
      '(Idempotent-Replayed: true); with a different body, 422; while the first is in flight, 409. ' +
      '1 to 255 visible ASCII characters (a UUID is a good choice); keys expire after 24 h.',
    examples: ['5f0c6f2e-3a51-4f55-9d0e-1c6b2a7d9e10'],
  });

/** `X-Request-Id`, as hono/request-id accepts it: anything else is replaced by a new UUID. */
export const requestIdSchema = z
  .string()
  .max(255)
  .regex(/^[\w\-=]+$/)
  .meta({
    description:
      'Traces the request: sent back on the response and carried in every log line of the request. ' +
      'Taken from the request when it is 1 to 255 letters, digits, "_", "-" or "="; otherwise generated.',
    examples: ['3b1f9c2e-8d4a-4e6b-a1c0-7f2d5e9b8a61'],
  });
