import type { DeadLetter } from '../app/ports/deadLetters.ts';
import type { CancelOutcome, RetryOutcome, SagaDetail, SagaSummary } from '../app/sagaAdmin.ts';
import { CliError, EXIT } from './exitCodes.ts';

// The admin API's answers are the service's own types, sent as JSON.
export type { DeadLetter, SagaDetail, SagaSummary };

/**
 * A client of the running service's admin API (`/admin`, see README "The command line"). `sagas`
 * and `dlq` go through it rather than to the database: the embedded database is held by the
 * running service, and a saga's retry or cancel must run where its venue and runner are.
 */

/** A page of `GET /admin/sagas`. */
export interface SagaPage {
  readonly sagas: readonly SagaSummary[];
  readonly next_cursor: string | null;
}

export interface SagaFilter {
  readonly stuck?: boolean;
  readonly status?: string;
  readonly user?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

export interface AdminClientOptions {
  /** The service's base URL, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  /** The admin key, sent as a bearer token; none when the service runs without keys. */
  readonly key: string | undefined;
  /** A request gives up after this long (retry and cancel call the venue: allow for its timeouts). */
  readonly timeoutMs?: number;
  /** Only for tests: the fetch to use (a Hono app's `request`). */
  readonly fetch?: (request: Request) => Response | Promise<Response>;
}

/** The URL as it may be shown: without a user name or password. */
export function shownUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return '(malformed URL)';
  }
}

interface Problem {
  readonly title?: string;
  readonly detail?: string;
  readonly code?: string;
  readonly type?: string;
  readonly errors?: readonly { readonly field?: string; readonly message?: string }[];
}

/** What a problem+json answer says, in one line, with its code (the end of its type URN). */
function problemText(problem: Problem, status: number): string {
  const code = problem.code ?? /[:/]([\w-]+)$/.exec(problem.type ?? '')?.[1];
  const parts = [`${problem.title ?? `HTTP ${status}`}${code ? ` (${code})` : ''}`];
  if (problem.detail) parts.push(problem.detail);
  for (const e of problem.errors ?? []) parts.push(`${e.field ?? '?'}: ${e.message ?? '?'}`);
  return parts.join(': ');
}

const EXIT_BY_STATUS: Readonly<Record<number, CliError['exitCode']>> = {
  400: EXIT.usage,
  401: EXIT.unauthorized,
  403: EXIT.unauthorized,
  404: EXIT.notFound,
  409: EXIT.conflict,
  422: EXIT.usage,
  502: EXIT.unreachable,
  503: EXIT.unreachable,
  504: EXIT.unreachable,
};

/** Why 401 or 403 happened, said without the key. */
function refusedText(status: number, key: string | undefined): string {
  if (status === 403) return 'the key is not an admin key (403): admin routes need a key of role admin';
  return key === undefined
    ? 'the service needs an admin key (401): give --key or set MOS_API_KEY'
    : 'the service refused the key (401): it is not valid or was revoked';
}

/**
 * The service's base URL, checked: http or https, and no user name or password (the key goes in
 * the Authorization header). The refusal never quotes the URL, which may hold a password.
 * @throws CliError (usage)
 */
function baseUrlOf(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(EXIT.usage, 'error: --url must be a URL such as http://127.0.0.1:8080');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CliError(EXIT.usage, 'error: --url must be an http:// or https:// URL');
  if (url.username !== '' || url.password !== '')
    throw new CliError(
      EXIT.usage,
      'error: --url must not hold a user name or password; give the admin key with MOS_API_KEY',
    );
  return text.replace(/\/+$/, '');
}

export function createAdminClient(options: AdminClientOptions) {
  const base = baseUrlOf(options.url);
  const send = options.fetch ?? ((request: Request) => fetch(request));
  const timeoutMs = options.timeoutMs ?? 60_000;

  async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      const request = new Request(`${base}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      response = await send(request);
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError';
      throw new CliError(
        EXIT.unreachable,
        timedOut
          ? `The service at ${shownUrl(base)} did not answer within ${timeoutMs} ms`
          : `Cannot reach the service at ${shownUrl(base)} (is it running? --url or PORT say where): ${causeText(error)}`,
        { cause: error },
      );
    }
    const text = await response.text();
    if (response.ok) {
      try {
        return JSON.parse(text) as T;
      } catch (error) {
        throw new CliError(
          EXIT.problems,
          `The service answered ${method} ${path} with a body that is not JSON`,
          {
            cause: error,
          },
        );
      }
    }
    if (response.status === 401 || response.status === 403)
      throw new CliError(EXIT.unauthorized, refusedText(response.status, options.key));
    let problem: Problem = {};
    try {
      problem = JSON.parse(text) as Problem;
    } catch {
      // Not problem+json (a proxy's page, a service without the admin routes): the status says it.
    }
    const exitCode = EXIT_BY_STATUS[response.status] ?? EXIT.problems;
    throw new CliError(exitCode, problemText(problem, response.status));
  }

  const path = (orderId: string) => `/admin/sagas/${encodeURIComponent(orderId)}`;

  return {
    listSagas(filter: SagaFilter): Promise<SagaPage> {
      const query = new URLSearchParams();
      if (filter.stuck !== undefined) query.set('stuck', String(filter.stuck));
      if (filter.status !== undefined) query.set('status', filter.status);
      if (filter.user !== undefined) query.set('user', filter.user);
      if (filter.limit !== undefined) query.set('limit', String(filter.limit));
      if (filter.cursor !== undefined) query.set('cursor', filter.cursor);
      const search = query.size > 0 ? `?${query.toString()}` : '';
      return call('GET', `/admin/sagas${search}`);
    },
    showSaga: (orderId: string): Promise<SagaDetail> => call('GET', path(orderId)),
    retrySaga: (orderId: string): Promise<RetryOutcome> => call('POST', `${path(orderId)}/retry`, {}),
    cancelSaga: (orderId: string, reason: string): Promise<CancelOutcome> =>
      call('POST', `${path(orderId)}/cancel`, { reason }),
    listDeadLetters: (limit?: number): Promise<{ messages: DeadLetter[] }> =>
      call('GET', `/admin/dlq${limit === undefined ? '' : `?limit=${limit}`}`),
    replayDeadLetters: (ids?: readonly string[]): Promise<{ replayed: number }> =>
      call('POST', '/admin/dlq/replay', ids === undefined ? {} : { ids }),
    dropDeadLetters: (which: { ids: readonly string[] } | { all: true }): Promise<{ dropped: number }> =>
      call('POST', '/admin/dlq/drop', which),
  };
}

export type AdminClient = ReturnType<typeof createAdminClient>;

/** fetch's "fetch failed" says nothing; its cause ("connect ECONNREFUSED 127.0.0.1:8080") does. */
function causeText(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  return cause instanceof Error ? cause.message : String(cause);
}
