import { z } from 'zod';
import { orderListQuerySchema, orderViewSchema } from './schemas.ts';

/** The dashboard's routes' shapes (src/http/dashboardApi.ts), for the OpenAPI document. */

export const whoamiSchema = z
  .object({
    authenticated: z
      .boolean()
      .meta({ description: 'false: keys are configured and the request holds no valid one (ask for it)' }),
    user_id: z
      .string()
      .nullable()
      .meta({ description: "The user a user's key acts for; null for an admin key or the open API" }),
    admin: z.boolean().meta({ description: "Whether the caller reaches every user's orders" }),
    keys_required: z
      .boolean()
      .meta({ description: 'Whether API keys are configured (false: the API is open)' }),
  })
  .meta({ id: 'Whoami' });

export const adminOrderListQuerySchema = orderListQuerySchema.extend({
  user: z.string().min(1).max(128).optional().meta({ description: "Only this user's orders" }),
});

export const orderStreamQuerySchema = z.object({
  user: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .meta({ description: "Only this user's orders (a user's key streams its own whatever this says)" }),
  since: z.iso
    .datetime()
    .optional()
    .meta({ description: 'Resume after this event id (the Last-Event-ID header does the same)' }),
});

/** The data of an `orders` message of the stream. */
export const feedBatchSchema = z
  .object({
    cursor: z.string().optional().meta({ description: 'Where the stream stands: the message id' }),
    orders: z.array(orderViewSchema).meta({ description: 'Every order that changed, at its newest version' }),
    counts: z
      .object({ pending: z.int(), processing: z.int(), completed: z.int(), failed: z.int() })
      .optional()
      .meta({ description: 'Orders by status, when they changed' }),
    truncated: z.literal(true).optional().meta({ description: 'More changed than one message carries' }),
  })
  .meta({ id: 'OrderFeedBatch' });
