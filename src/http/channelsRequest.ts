import { isLosslessNumber } from 'lossless-json';
import { z } from 'zod';
import type { ChannelChanges } from '../app/notifications/channels.ts';
import { ValidationError } from '../domain/errors.ts';
import type { FieldProblem } from '../domain/errors.ts';
import { issuesToProblems, jsonKind, storable, storableText, userIdText } from './fields.ts';

/** Telegram chat ids are integers: positive for users, negative for groups (-100… supergroups). */
const CHAT_ID = /^-?[1-9]\d{0,19}$/;
const CHAT_ID_HINT = 'an integer such as 123456789 (negative for a group)';

/** A chat id arrives as a JSON number (its exact text, kept by lossless-json) or a string. */
const chatId = storable(
  z
    .custom<string>((value) => typeof value === 'string' || isLosslessNumber(value), {
      error: (issue) => `must be a Telegram chat id (${CHAT_ID_HINT}) or null, got ${jsonKind(issue.input)}`,
    })
    // What the OpenAPI document shows for it (a custom check has no JSON Schema of its own).
    .meta({ anyOf: [{ type: 'integer' }, { type: 'string', pattern: CHAT_ID.source }] })
    .transform((value) => String(value).trim()),
)
  .refine((value) => CHAT_ID.test(value), {
    error: (issue) => `must be a Telegram chat id, ${CHAT_ID_HINT}; got "${String(issue.input)}"`,
  })
  .nullable()
  .optional()
  .meta({
    description: `The Telegram chat to notify: ${CHAT_ID_HINT}; null removes it`,
    examples: [123456789],
  });

const email = storableText('an email address or null')
  .trim()
  .max(254, 'must be at most 254 characters')
  .pipe(
    z.email({
      error: (issue) => `must be an email address, e.g. "trader@example.com"; got "${String(issue.input)}"`,
    }),
  )
  .nullable()
  .optional()
  .meta({
    description: 'The address to notify by email; null removes it',
    format: 'email',
    examples: ['trader@example.com'],
  });

/** The body of `PUT /users/:userId/channels`: what validateChannelsRequest checks and the OpenAPI document shows. */
export const channelsRequestSchema = z
  .strictObject(
    { telegram_chat_id: chatId, email },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys' ? 'has fields this API does not know' : 'must be a JSON object',
    },
  )
  .refine((body) => body.telegram_chat_id !== undefined || body.email !== undefined, {
    error: 'must set telegram_chat_id or email (null removes one)',
  })
  .meta({
    minProperties: 1,
    description:
      'The channels to change: a value sets one, null removes it, an absent field is left as it is',
  });

/** The user id of the path, or why not; undefined when its percent-encoding is not UTF-8. */
function checkUserId(userId: string | undefined): { userId: string } | { problem: FieldProblem } {
  if (userId === undefined) {
    return {
      problem: {
        field: 'user_id',
        message: 'must be percent-encoded UTF-8 (the path has bytes that are not)',
      },
    };
  }
  const message = userIdText().safeParse(userId).error?.issues[0]?.message;
  return message === undefined ? { userId } : { problem: { field: 'user_id', message } };
}

/**
 * Validates `PUT /users/:userId/channels`: the user id from the path (strictPathParam) and the
 * body's changes. Every failing field is reported at once.
 * @throws ValidationError listing each field and why.
 */
export function validateChannelsRequest(
  userId: string | undefined,
  body: unknown,
): { userId: string; changes: ChannelChanges } {
  const parsed = channelsRequestSchema.safeParse(body);
  const problems = parsed.success ? [] : issuesToProblems(parsed.error.issues, 'is not a channel');
  const user = checkUserId(userId);
  if ('problem' in user) problems.unshift(user.problem);
  if (!('userId' in user) || !parsed.success) throw new ValidationError(problems);
  return { userId: user.userId, changes: parsed.data };
}

/**
 * Validates the user id of `GET /users/:userId/channels` (from strictPathParam).
 * @throws ValidationError naming `user_id`.
 */
export function validateUserId(userId: string | undefined): string {
  const user = checkUserId(userId);
  if ('problem' in user) throw new ValidationError([user.problem]);
  return user.userId;
}
