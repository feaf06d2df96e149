import type { Context } from 'hono';
import { isLosslessNumber } from 'lossless-json';
import { z } from 'zod';
import type { FieldProblem } from '../domain/errors.ts';

/** What a JSON value is, in words, for "must be a string, got a number". */
export function jsonKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (isLosslessNumber(value)) return 'a number';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

/**
 * Zod issues as the field problems of a problem+json body; a field the schema does not know is
 * named on its own, with `unknownField` as the message (e.g. "is not a field of an order").
 */
export function issuesToProblems(issues: readonly z.core.$ZodIssue[], unknownField: string): FieldProblem[] {
  return issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({ field: [...issue.path, key].join('.'), message: unknownField }))
      : [{ field: issue.path.map(String).join('.'), message: issue.message }],
  );
}

// In u-mode a well-formed pair is one code point, so only an unpaired half matches.
const LONE_SURROGATE = /\p{Surrogate}/u;

/**
 * Why PostgreSQL could not store this text, or undefined when it can. `text` and `jsonb` refuse
 * U+0000, and a lone surrogate (which a JSON "\ud800" escape produces) is not Unicode: neither
 * driver can send it as UTF-8. Without this check either reaches the database and fails there, as
 * a 500 with nothing written.
 */
export function unstorableReason(text: string): string | undefined {
  if (text.includes('\u0000')) return 'must not contain NUL characters (U+0000)';
  if (LONE_SURROGATE.test(text)) return 'must be valid Unicode (it has a lone surrogate)';
  return undefined;
}

/**
 * Adds the storable-text rule to a schema whose output is a string. It aborts, so later rules
 * (and messages that quote the input) never see such text.
 */
export function storable<T extends z.ZodType<string>>(schema: T): T {
  return schema.refine((text) => unstorableReason(text) === undefined, {
    error: (issue) => unstorableReason(String(issue.input)),
    abort: true,
  });
}

/** A required string we may store: "is required", "must be <what>, got a number", or not storable. */
export function storableText(what = 'a string') {
  return storable(
    z.string({
      error: (issue) =>
        issue.input === undefined ? 'is required' : `must be ${what}, got ${jsonKind(issue.input)}`,
    }),
  );
}

/** A user id, in an order's body or a path: a storable, non-blank string of up to 128 characters. */
export function userIdText() {
  return storableText()
    .refine((id) => id.trim() !== '', 'must not be empty')
    .max(128, 'must be at most 128 characters')
    .meta({ pattern: '\\S', examples: ['user-123'] });
}

/**
 * A route parameter percent-decoded strictly, or undefined when its bytes are not UTF-8 (a lone
 * surrogate can only arrive as such bytes, e.g. %ED%A0%80). Hono's `c.req.param()` leaves those
 * sequences encoded, so "%ED%A0%80" would silently name a different, literal id.
 */
export function strictPathParam(c: Context, name: string): string | undefined {
  const index = c.req.routePath.split('/').indexOf(`:${name}`);
  const segment = new URL(c.req.url).pathname.split('/')[index];
  if (index < 0 || segment === undefined) throw new Error(`route ${c.req.routePath} has no :${name}`);
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
