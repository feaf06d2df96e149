import { isLosslessNumber } from 'lossless-json';
import { z } from 'zod';
import type { ChannelChanges } from '../app/notifications/channels.ts';
import { ValidationError } from '../domain/errors.ts';
import type { FieldProblem } from '../domain/errors.ts';
import { issuesToProblems, jsonKind } from './fields.ts';

/** Telegram chat ids are integers: positive for users, negative for groups (-100… supergroups). */
const CHAT_ID = /^-?[1-9]\d{0,19}$/;
const CHAT_ID_HINT = 'an integer such as 123456789 (negative for a group)';

/** A chat id arrives as a JSON number (its exact text, kept by lossless-json) or a string. */
const chatId = z
  .custom<string>((value) => typeof value === 'string' || isLosslessNumber(value), {
    error: (issue) => `must be a Telegram chat id (${CHAT_ID_HINT}) or null, got ${jsonKind(issue.input)}`,
  })
  .transform((value) => String(value).trim())
  .refine((value) => CHAT_ID.test(value), {
    error: (issue) => `must be a Telegram chat id, ${CHAT_ID_HINT}; got "${String(issue.input)}"`,
  })
  .nullable()
  .optional();

const email = z
  .string({ error: (issue) => `must be an email address or null, got ${jsonKind(issue.input)}` })
  .trim()
  .max(254, 'must be at most 254 characters')
  .pipe(
    z.email({
      error: (issue) => `must be an email address, e.g. "trader@example.com"; got "${String(issue.input)}"`,
    }),
  )
  .nullable()
  .optional();

const channelsSchema = z
  .strictObject(
    { telegram_chat_id: chatId, email },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys' ? 'has fields this API does not know' : 'must be a JSON object',
    },
  )
  .refine((body) => body.telegram_chat_id !== undefined || body.email !== undefined, {
    error: 'must set telegram_chat_id or email (null removes one)',
  });

function userIdProblem(userId: string): FieldProblem | undefined {
  if (userId.trim() === '') return { field: 'user_id', message: 'must not be empty' };
  if (userId.length > 128) return { field: 'user_id', message: 'must be at most 128 characters' };
  return undefined;
}

/**
 * Validates `PUT /users/:userId/channels`: the user id from the path and the body's changes.
 * Every failing field is reported at once.
 * @throws ValidationError listing each field and why.
 */
export function validateChannelsRequest(userId: string, body: unknown): ChannelChanges {
  const parsed = channelsSchema.safeParse(body);
  const problems = parsed.success ? [] : issuesToProblems(parsed.error.issues, 'is not a channel');
  const user = userIdProblem(userId);
  if (user) problems.unshift(user);
  if (problems.length > 0 || !parsed.success) throw new ValidationError(problems);
  return parsed.data;
}

/**
 * Validates the user id of `GET /users/:userId/channels`.
 * @throws ValidationError naming `user_id`.
 */
export function validateUserId(userId: string): string {
  const problem = userIdProblem(userId);
  if (problem) throw new ValidationError([problem]);
  return userId;
}
