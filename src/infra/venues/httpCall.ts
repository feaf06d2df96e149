import type { request } from 'undici';
import { TransientError } from '../../app/ports.ts';
import type { z } from 'zod';
import { describeIssues, errorBodySchema } from './wire.ts';

/**
 * One HTTP exchange with a deadline, shared by the price service and trade worker adapters:
 * every way it can fail becomes a TransientError of the kind the saga acts on.
 */

/** What an exchange needs of fetch: the global one fits, and so does {@link defaultHttpFetch}. */
export type HttpFetch = (
  url: URL,
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
) => Promise<{ readonly status: number; text(): Promise<string> }>;

let undiciRequest: Promise<typeof request> | undefined;

/**
 * The default client of the venue adapters: undici's `request` on Node, fetch on Deno. Measured
 * with WORKERS=2 (a worker calls the shared market twice an order), fetch took about a fifth of a
 * worker's CPU; `request` is the same library without the WHATWG Request/Response/stream objects.
 * It keeps connections alive in undici's global pool, as fetch does.
 */
export const defaultHttpFetch: HttpFetch = async (url, init) => {
  if ('Deno' in globalThis) return fetch(url, init);
  undiciRequest ??= import('undici').then((undici) => undici.request);
  const request = await undiciRequest;
  const response = await request(url, {
    method: init.method as 'GET' | 'POST',
    headers: init.headers,
    ...(init.body === undefined ? {} : { body: init.body }),
    signal: init.signal,
  });
  return { status: response.statusCode, text: () => response.body.text() };
};

export interface HttpAnswer {
  readonly status: number;
  readonly text: string;
}

export interface ExchangeOptions {
  readonly fetch: HttpFetch;
  readonly timeoutMs: number;
  /** The caller's signal (the saga's deadline); aborting it ends the exchange as a timeout. */
  readonly signal: AbortSignal | undefined;
  /** Names the call in messages, e.g. `Trade worker POST /swaps (key swap-1)`. */
  readonly what: string;
  /**
   * True when the request may have had its effect even though no answer came (a POST of a swap):
   * a connection that breaks after sending is then a lost answer, not a plain error.
   */
  readonly mayHaveEffect: boolean;
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
// Deno reports these in the message rather than as a code.
const UNREACHABLE_TEXT =
  /connection refused|dns error|failed to lookup|no route to host|network is unreachable/i;

/** True when the error says the peer could not be reached at all, so nothing was sent. */
function isUnreachable(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth += 1) {
    if (typeof current !== 'object') return false;
    const { code, message, cause } = current as { code?: unknown; message?: unknown; cause?: unknown };
    if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return true;
    if (typeof message === 'string' && UNREACHABLE_TEXT.test(message)) return true;
    current = cause;
  }
  return false;
}

function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

/**
 * Sends the request and reads the whole body, both within `timeoutMs` and the caller's signal.
 * @throws TransientError `timeout` past the deadline or on the caller's abort; `outage` when the
 *   peer cannot be reached; `lost_answer` when the connection broke after a request that may have
 *   had its effect; `error` otherwise.
 */
export async function exchange(
  url: URL,
  init: { method: string; headers: Record<string, string>; body?: string },
  options: ExchangeOptions,
): Promise<HttpAnswer> {
  // One controller and one timer per call: AbortSignal.timeout() and AbortSignal.any() cost a
  // transferable signal and a listener set each, a visible share of a saga's CPU on Node 20.
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException(`no answer within ${options.timeoutMs} ms`, 'TimeoutError'));
  }, options.timeoutMs);
  const caller = options.signal;
  const onCallerAbort = () => controller.abort(caller?.reason);
  if (caller?.aborted) onCallerAbort();
  else caller?.addEventListener('abort', onCallerAbort, { once: true });
  let sent = false;
  try {
    const response = await options.fetch(url, { ...init, signal: controller.signal });
    sent = true;
    return { status: response.status, text: await response.text() };
  } catch (error) {
    if (timedOut) {
      throw new TransientError('timeout', `${options.what}: no answer within ${options.timeoutMs} ms`, {
        cause: error,
      });
    }
    if (options.signal?.aborted) {
      throw new TransientError('timeout', `${options.what}: aborted by the caller before the answer`, {
        cause: error,
      });
    }
    if (!sent && isUnreachable(error)) {
      throw new TransientError('outage', `${options.what}: cannot reach the service (${reasonOf(error)})`, {
        cause: error,
      });
    }
    if (options.mayHaveEffect) {
      throw new TransientError(
        'lost_answer',
        `${options.what}: the connection failed before the whole answer arrived (${reasonOf(error)}); ` +
          'the request may have taken effect',
        { cause: error },
      );
    }
    throw new TransientError('error', `${options.what}: request failed (${reasonOf(error)})`, {
      cause: error,
    });
  } finally {
    clearTimeout(timer);
    caller?.removeEventListener('abort', onCallerAbort);
  }
}

/** The `detail` (or `error`) of an error body, if it has one. */
export function detailOf(answer: HttpAnswer): string | undefined {
  try {
    const parsed = errorBodySchema.safeParse(JSON.parse(answer.text));
    if (parsed.success) return parsed.data.detail ?? parsed.data.error;
  } catch {
    // Not JSON: fall through to the raw text.
  }
  const text = answer.text.trim();
  return text === '' ? undefined : text.slice(0, 200);
}

/** The TransientError for a status the contract does not list as an answer. */
export function statusError(answer: HttpAnswer, what: string): TransientError {
  const detail = detailOf(answer);
  const message = `${what}: HTTP ${answer.status}${detail ? ` (${detail})` : ''}`;
  if (answer.status === 503) return new TransientError('outage', message);
  if (answer.status === 504 || answer.status === 408) return new TransientError('timeout', message);
  if (answer.status >= 500 || answer.status === 429) return new TransientError('error', message);
  return new TransientError('error', `${message}: not an answer this API defines`);
}

/** Parses and validates a JSON body; a malformed one is never trusted. */
export function parseBody<T>(answer: HttpAnswer, schema: z.ZodType<T>, what: string): T {
  let json: unknown;
  try {
    json = JSON.parse(answer.text);
  } catch {
    throw new TransientError(
      'error',
      `${what}: HTTP ${answer.status} with a body that is not JSON: ${JSON.stringify(answer.text.slice(0, 100))}`,
    );
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new TransientError(
      'error',
      `${what}: HTTP ${answer.status} with a malformed body: ${describeIssues(parsed.error)}`,
    );
  }
  return parsed.data;
}
