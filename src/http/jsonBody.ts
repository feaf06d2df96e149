import { parse as parseLosslessJson } from 'lossless-json';
import { RequestProblem } from './problems.ts';

/** `application/json`, or any `application/<x>+json`, with parameters or none. */
const JSON_CONTENT_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/**
 * Reads the body as JSON, keeping numbers' exact text (amounts never pass through a float).
 * `what` names the body in the error, e.g. "the order". With `empty`, a body with nothing in it
 * (or only white space) reads as that value, whatever its content type (a POST with no options).
 */
export async function readJson(
  request: Request,
  what: string,
  options: { readonly empty?: unknown } = {},
): Promise<unknown> {
  const bytes = await request.arrayBuffer();
  if ('empty' in options && /^\s*$/.test(new TextDecoder().decode(bytes))) return options.empty;
  const contentType = request.headers.get('content-type') ?? '';
  if (!JSON_CONTENT_TYPE.test(contentType)) {
    throw new RequestProblem(
      415,
      'unsupported_media_type',
      'Unsupported content type',
      `Send ${what} as JSON with "Content-Type: application/json" (got ${contentType ? `"${contentType}"` : 'none'})`,
    );
  }
  let text: string;
  try {
    // Strict: request.text() would turn bytes that are not UTF-8 (a lone surrogate's ED A0 80)
    // into U+FFFD, and the order would be stored under a user id nobody sent.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new RequestProblem(
      400,
      'malformed_json',
      'Malformed JSON',
      'The body is not valid UTF-8, as JSON must be',
    );
  }
  try {
    return parseLosslessJson(text);
  } catch (error) {
    throw new RequestProblem(
      400,
      'malformed_json',
      'Malformed JSON',
      `The body is not valid JSON: ${(error as Error).message}`,
    );
  }
}
