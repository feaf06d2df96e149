import type { Context, Hono, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { z } from 'zod';
import type { DeadLetters } from '../app/ports/deadLetters.ts';
import { ORDER_VIEW_STATUSES } from '../app/projections.ts';
import type { OrderViewStatus } from '../app/projections.ts';
import { decodeCursor, encodeCursor } from '../app/readModels.ts';
import { SagaFinishedError, SwapOutcomeUnknownError } from '../app/sagaAdmin.ts';
import type { SagaAdmin } from '../app/sagaAdmin.ts';
import { NotFoundError } from '../domain/errors.ts';
import type { FieldProblem } from '../domain/errors.ts';
import { cancelRequestSchema, dropRequestSchema, replayRequestSchema } from './adminSchemas.ts';
import { principalOf } from './auth.ts';
import { issuesToProblems } from './fields.ts';
import { readJson } from './jsonBody.ts';
import { invalid, RequestProblem } from './problems.ts';
import { LIST_LIMIT } from './schemas.ts';

/**
 * The admin API (`/admin/…`): sagas (list, show, retry, cancel) and dead letters (list, replay,
 * drop), for operators. Admin keys only once keys are configured (a user's key: 403; none: 401,
 * from requireApiKey); open, like the rest, when none is.
 */
export interface AdminDeps {
  readonly sagas: SagaAdmin;
  readonly deadLetters: DeadLetters;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_BODY_BYTES = 64 * 1024;

const adminOnly: MiddlewareHandler = async (c, next) => {
  if (principalOf(c).kind === 'user') {
    throw new RequestProblem(403, 'forbidden', 'Forbidden', 'The admin API needs an admin key');
  }
  await next();
};

/** A client's value in a message: quoted, and cut short when long. */
const quoted = (value: string) => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);

/** The query parameters of `c`, each at most once; the problems so far are collected in `problems`. */
function queryReader(c: Context, problems: FieldProblem[]) {
  return (name: string): string | undefined => {
    const values = c.req.queries(name) ?? [];
    if (values.length > 1) {
      problems.push({ field: name, message: `is given ${values.length} times; give it at most once` });
      return undefined;
    }
    return values[0];
  };
}

function readLimit(text: string | undefined, problems: FieldProblem[]): number {
  if (text === undefined) return LIST_LIMIT.default;
  if (/^\d{1,4}$/.test(text) && Number(text) >= LIST_LIMIT.min && Number(text) <= LIST_LIMIT.max)
    return Number(text);
  problems.push({
    field: 'limit',
    message: `must be an integer from ${LIST_LIMIT.min} to ${LIST_LIMIT.max}; got ${quoted(text)}`,
  });
  return LIST_LIMIT.default;
}

/** `GET /admin/sagas`'s query, validated; every failing parameter is named at once. */
function readSagaQuery(c: Context) {
  const problems: FieldProblem[] = [];
  const single = queryReader(c, problems);
  const known = new Set(['stuck', 'status', 'user', 'limit', 'cursor']);
  for (const name of Object.keys(c.req.queries())) {
    if (!known.has(name))
      problems.push({ field: name, message: `is not a parameter of this list (${[...known].join(', ')})` });
  }
  const stuckText = single('stuck');
  let stuck: boolean | undefined;
  if (stuckText === 'true' || stuckText === 'false') stuck = stuckText === 'true';
  else if (stuckText !== undefined)
    problems.push({ field: 'stuck', message: `must be true or false; got ${quoted(stuckText)}` });
  const statusText = single('status');
  let status: OrderViewStatus | undefined;
  if (statusText !== undefined) {
    status = ORDER_VIEW_STATUSES.find((s) => s === statusText);
    if (status === undefined)
      problems.push({
        field: 'status',
        message: `must be one of ${ORDER_VIEW_STATUSES.join(', ')}; got ${quoted(statusText)}`,
      });
  }
  const user = single('user');
  if (user !== undefined && (user.length === 0 || user.length > 128))
    problems.push({ field: 'user', message: 'must be a user id of 1 to 128 characters' });
  const limit = readLimit(single('limit'), problems);
  const cursorText = single('cursor');
  const decoded = cursorText === undefined ? undefined : decodeCursor(cursorText);
  if (cursorText !== undefined && decoded === undefined)
    problems.push({
      field: 'cursor',
      message: 'is not a cursor this API handed out: pass the previous page’s next_cursor unchanged',
    });
  if (problems.length > 0) invalid('invalid_query', problems);
  return {
    stuck,
    status,
    userId: user,
    limit,
    cursor: decoded && { updated_at: decoded.created_at, order_id: decoded.id },
  };
}

/** Reads a JSON body (none at all reads as `{}`) and validates it with `schema`. */
async function readBody<S extends z.ZodType>(c: Context, schema: S, what: string): Promise<z.infer<S>> {
  const body = await readJson(c.req.raw, what, { empty: {} });
  const parsed = schema.safeParse(body);
  if (!parsed.success)
    invalid('invalid_body', issuesToProblems(parsed.error.issues, `is not a field of ${what}`));
  return parsed.data;
}

const orderIdOf = (c: Context): string => {
  const raw = c.req.param('orderId') ?? '';
  if (!UUID.test(raw)) throw new NotFoundError(`There is no order with id ${raw}`);
  return raw.toLowerCase();
};

/** The admin use cases' refusals as the contract's 409 problems. */
function conflicts(error: unknown): never {
  if (error instanceof SagaFinishedError)
    throw new RequestProblem(409, 'saga_finished', 'The saga has ended', error.message);
  if (error instanceof SwapOutcomeUnknownError)
    throw new RequestProblem(409, 'swap_outcome_unknown', 'The swap outcome is unknown', error.message);
  throw error;
}

/** Mounts the admin routes on `app` (createApp does, when given `admin`). */
export function mountAdmin(app: Hono, deps: AdminDeps): void {
  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => {
      throw new RequestProblem(
        413,
        'body_too_large',
        'Request body too large',
        `The body must be at most ${MAX_BODY_BYTES} bytes`,
      );
    },
  });
  app.use('/admin/*', adminOnly);

  app.get('/admin/sagas', async (c) => {
    const page = await deps.sagas.list(readSagaQuery(c));
    return c.json({
      sagas: page.sagas,
      next_cursor: page.next && encodeCursor({ created_at: page.next.updated_at, id: page.next.order_id }),
    });
  });

  app.get('/admin/sagas/:orderId', async (c) => c.json(await deps.sagas.show(orderIdOf(c))));

  app.post('/admin/sagas/:orderId/retry', async (c) =>
    c.json(await deps.sagas.retry(orderIdOf(c)).catch(conflicts)),
  );

  app.post('/admin/sagas/:orderId/cancel', limit, async (c) => {
    const orderId = orderIdOf(c);
    const { reason } = await readBody(c, cancelRequestSchema, 'a cancel request');
    return c.json(await deps.sagas.cancel(orderId, reason).catch(conflicts));
  });

  app.get('/admin/dlq', async (c) => {
    const problems: FieldProblem[] = [];
    const limitValue = readLimit(queryReader(c, problems)('limit'), problems);
    if (problems.length > 0) invalid('invalid_query', problems);
    return c.json({ messages: await deps.deadLetters.list({ limit: limitValue }) });
  });

  app.post('/admin/dlq/replay', limit, async (c) => {
    const { ids } = await readBody(c, replayRequestSchema, 'a replay request');
    return c.json({ replayed: await deps.deadLetters.replay(ids) });
  });

  app.post('/admin/dlq/drop', limit, async (c) => {
    const body = await readBody(c, dropRequestSchema, 'a drop request');
    return c.json({ dropped: await deps.deadLetters.drop('all' in body ? 'all' : body.ids) });
  });
}
