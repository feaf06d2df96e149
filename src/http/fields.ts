import { isLosslessNumber } from 'lossless-json';
import type { z } from 'zod';
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
