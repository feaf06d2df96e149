import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { AppError } from '../domain/errors.ts';
import type { FieldProblem } from '../domain/errors.ts';
import { DatabaseUnavailableError } from '../app/ports/database.ts';
import type { Logger } from '../app/ports/logger.ts';

/** An RFC 9457 problem document. `errors` lists the fields that failed, when any did. */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly instance?: string;
  readonly errors?: readonly FieldProblem[];
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

const problemType = (code: string) => `urn:market-order-saga:problem:${code}`;

export function problemResponse(
  c: Context,
  status: ContentfulStatusCode,
  problem: Omit<Problem, 'status' | 'instance'>,
) {
  const body: Problem = { ...problem, status, instance: c.req.path };
  return c.body(JSON.stringify(body), status, { 'content-type': PROBLEM_CONTENT_TYPE });
}

/** Raised by the HTTP layer itself for malformed requests (415, 400, 413, …) and refusals (429, …). */
export class RequestProblem extends HTTPException {
  readonly problemCode: string;
  readonly title: string;
  /** Headers of the response, e.g. Retry-After. */
  readonly headers: Readonly<Record<string, string>>;
  /** The parameters or fields that failed, when the problem is about some (e.g. a query parameter). */
  readonly errors: readonly FieldProblem[] | undefined;
  constructor(
    status: ContentfulStatusCode,
    code: string,
    title: string,
    detail: string,
    more: {
      readonly headers?: Readonly<Record<string, string>>;
      readonly errors?: readonly FieldProblem[];
    } = {},
  ) {
    super(status, { message: detail });
    this.problemCode = code;
    this.title = title;
    this.headers = more.headers ?? {};
    this.errors = more.errors;
  }
}

/** 400 for query parameters or body fields that failed, each named with why (in `errors`). */
export function invalid(code: 'invalid_query' | 'invalid_body', problems: readonly FieldProblem[]): never {
  throw new RequestProblem(
    400,
    code,
    code === 'invalid_query' ? 'Invalid query parameters' : 'Invalid request body',
    problems.map((p) => `${p.field} ${p.message}`).join('; '),
    { errors: problems },
  );
}

const STATUS_BY_CODE = {
  validation: 422,
  not_found: 404,
  conflict: 409,
  illegal_transition: 409,
} as const satisfies Record<AppError['code'], ContentfulStatusCode>;

const TITLE_BY_CODE = {
  validation: 'The request has invalid fields',
  not_found: 'Not found',
  conflict: 'Conflicting concurrent change',
  illegal_transition: 'Not allowed in the current state',
} as const satisfies Record<AppError['code'], string>;

/** The one place where errors become HTTP responses. */
export function errorHandler(logger: Logger) {
  return (error: Error, c: Context) => {
    if (error instanceof RequestProblem) {
      for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
      return problemResponse(c, error.status, {
        type: problemType(error.problemCode),
        title: error.title,
        detail: error.message,
        ...(error.errors ? { errors: error.errors } : {}),
      });
    }
    if (error instanceof AppError) {
      const problems = 'problems' in error ? (error.problems as readonly FieldProblem[]) : undefined;
      return problemResponse(c, STATUS_BY_CODE[error.code], {
        type: problemType(error.code),
        title: TITLE_BY_CODE[error.code],
        detail: problems ? `${problems.length} field(s) failed validation` : error.message,
        ...(problems ? { errors: problems } : {}),
      });
    }
    if (error instanceof HTTPException) {
      return problemResponse(c, error.status, {
        type: problemType('http'),
        title: error.message || 'Request failed',
        detail: error.message,
      });
    }
    if (error instanceof DatabaseUnavailableError) {
      logger.warn({ err: error, path: c.req.path, method: c.req.method }, 'database unavailable');
      c.header('Retry-After', '1');
      return problemResponse(c, 503, {
        type: problemType('database-unavailable'),
        title: 'The database is unavailable',
        detail:
          'The database could not be reached, so the request may or may not have been recorded. ' +
          'Retry it; an order sent with an Idempotency-Key is then placed once.',
      });
    }
    logger.error({ err: error, path: c.req.path, method: c.req.method }, 'unhandled error');
    return problemResponse(c, 500, {
      type: problemType('internal'),
      title: 'Internal error',
      detail: 'An unexpected error occurred; it has been logged.',
    });
  };
}
