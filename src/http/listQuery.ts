import type { Context } from 'hono';
import type { FieldProblem } from '../domain/errors.ts';
import { decodeCursor, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../app/readModels.ts';
import type { ListRequest } from '../app/readModels.ts';
import type { ViewCursor } from '../app/ports/readModels.ts';
import { invalid } from './problems.ts';

/** A client's value in a message: quoted, and cut short when long. */
const quoted = (value: string) => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);

/**
 * The query of a list route (`?status=&limit=&cursor=`), validated. Every failing parameter is
 * named at once.
 * @throws RequestProblem 400 `invalid_query` listing each parameter and why.
 */
export function readListQuery<Status extends string>(
  c: Context,
  statuses: readonly Status[],
): ListRequest<Status> {
  const problems: FieldProblem[] = [];
  const single = (name: string): string | undefined => {
    const values = c.req.queries(name) ?? [];
    if (values.length > 1) {
      problems.push({ field: name, message: `is given ${values.length} times; give it at most once` });
      return undefined;
    }
    return values[0];
  };

  let limit = DEFAULT_PAGE_SIZE;
  const limitText = single('limit');
  if (limitText !== undefined) {
    if (/^\d{1,4}$/.test(limitText) && Number(limitText) >= 1 && Number(limitText) <= MAX_PAGE_SIZE) {
      limit = Number(limitText);
    } else {
      problems.push({
        field: 'limit',
        message: `must be an integer from 1 to ${MAX_PAGE_SIZE}; got ${quoted(limitText)}`,
      });
    }
  }

  let status: Status | undefined;
  const statusText = single('status');
  if (statusText !== undefined) {
    status = statuses.find((s) => s === statusText);
    if (status === undefined) {
      problems.push({
        field: 'status',
        message: `must be one of ${statuses.join(', ')}; got ${quoted(statusText)}`,
      });
    }
  }

  let cursor: ViewCursor | undefined;
  const cursorText = single('cursor');
  if (cursorText !== undefined) {
    cursor = decodeCursor(cursorText);
    if (cursor === undefined) {
      problems.push({
        field: 'cursor',
        message: 'is not a cursor this API handed out: pass the previous page’s next_cursor unchanged',
      });
    }
  }

  if (problems.length > 0) invalid('invalid_query', problems);
  return { limit, status, cursor };
}
