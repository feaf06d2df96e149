import { z } from 'zod';
import { idText, LIST_LIMIT, orderStatusSchema } from './schemas.ts';

/**
 * The admin API's requests and answers (docs/contract: `/admin/sagas`, `/admin/dlq`) as zod
 * schemas: the routes validate bodies with them and src/http/openapi.ts documents them.
 */

const time = z.iso.datetime({ offset: true }).meta({ description: 'An ISO-8601 time' });

export const sagaSummarySchema = z
  .object({
    order_id: idText,
    user_id: z.string(),
    status: orderStatusSchema.meta({ description: 'As orders_view has it' }),
    state: z.string().meta({ description: 'The saga machine state', examples: ['awaitingOutcome'] }),
    pending_step: z.string().nullable().meta({ description: 'The step it waits to run; null once ended' }),
    machine_version: z.int().min(1),
    created_at: time,
    updated_at: time.meta({ description: 'When its last event was stored' }),
    age_ms: z.int().min(0).meta({ description: 'Milliseconds since its last event' }),
    stuck: z.boolean().meta({ description: 'Open, and no event for longer than STUCK_AFTER_MS' }),
    failure_reason: z.string().nullable(),
  })
  .meta({ id: 'SagaSummary' });

export const sagaPageSchema = z
  .object({
    sagas: z.array(sagaSummarySchema),
    next_cursor: z
      .string()
      .nullable()
      .meta({ description: 'Pass as `cursor` for the next page; null: last' }),
  })
  .meta({ id: 'SagaPage', description: 'Most recently updated first' });

export const sagaDetailSchema = sagaSummarySchema
  .extend({
    deadline: time.nullable().meta({ description: 'Acceptance + the saga deadline; null once ended' }),
    history: z.array(
      z.object({
        stream: z.enum(['order', 'position']),
        version: z.int().min(1),
        event_type: z.string(),
        occurred_at: time,
        payload: z.record(z.string(), z.unknown()),
      }),
    ),
  })
  .meta({ id: 'SagaDetail' });

export const sagaListQuerySchema = z.object({
  stuck: z.enum(['true', 'false']).optional().meta({ description: 'Only stuck sagas, or only the others' }),
  status: orderStatusSchema.optional().meta({ description: 'Only orders in this status' }),
  user: z.string().optional().meta({ description: "Only this user's" }),
  limit: z.int().min(LIST_LIMIT.min).max(LIST_LIMIT.max).default(LIST_LIMIT.default),
  cursor: z.string().optional().meta({ description: "The previous page's next_cursor (opaque)" }),
});

export const retryOutcomeSchema = z
  .object({
    order_id: idText,
    outcome: z.enum(['completed', 'failed', 'suspended']),
    detail: z.string().optional(),
  })
  .meta({ id: 'RetryOutcome' });

export const cancelRequestSchema = z
  .strictObject({
    reason: z
      .string('must be a string')
      .trim()
      .min(1, 'must not be blank')
      .max(200, 'must be at most 200 characters')
      .meta({ description: 'Why: stored as the detail of OrderFailed', examples: ['customer request'] }),
  })
  .meta({ id: 'CancelRequest' });

export const cancelOutcomeSchema = z
  .object({
    order_id: idText,
    outcome: z.enum(['cancelled', 'completed']).meta({
      description:
        'cancelled: the saga compensated; completed: voiding found the swap executed, so the order completed',
    }),
    detail: z.string(),
  })
  .meta({ id: 'CancelOutcome' });

/** Dead letter row ids (the `id` of GET /admin/dlq). */
const deadLetterId = z.string('must be a string').regex(/^[1-9]\d{0,17}$/, 'must be a dead letter id');

export const deadLetterSchema = z
  .object({
    id: z.string(),
    queue: z.string(),
    event_type: z.string().nullable(),
    event_id: idText,
    order_id: idText.nullable(),
    reason: z.string().nullable(),
    error: z.string().nullable(),
    dead_at: time,
    deaths: z.int().min(1),
  })
  .meta({ id: 'DeadLetter' });

export const deadLetterListSchema = z
  .object({ messages: z.array(deadLetterSchema) })
  .meta({ id: 'DeadLetters', description: 'Newest first' });

export const dlqListQuerySchema = z.object({
  limit: z.int().min(LIST_LIMIT.min).max(LIST_LIMIT.max).default(LIST_LIMIT.default),
});

export const replayRequestSchema = z
  .strictObject({
    ids: z.array(deadLetterId).min(1, 'must name at least one').max(1000).optional(),
  })
  .meta({ id: 'ReplayRequest', description: 'All dead letters when `ids` is omitted' });

export const dropRequestSchema = z
  .union([
    z.strictObject({ ids: z.array(deadLetterId).min(1, 'must name at least one').max(1000) }),
    z.strictObject({ all: z.literal(true, 'must be true') }),
  ])
  .meta({ id: 'DropRequest', description: 'Either `ids`, or `all: true`' });

export const replayedSchema = z.object({ replayed: z.int().min(0) }).meta({ id: 'Replayed' });
export const droppedSchema = z.object({ dropped: z.int().min(0) }).meta({ id: 'Dropped' });
