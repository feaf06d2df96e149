import { parseArgs } from 'node:util';
import { issueKey } from '../app/apiKeys.ts';
import type { ApiKeyRecord, ApiKeyStore } from '../app/apiKeys.ts';
import { storableText, userIdText } from '../http/fields.ts';

export interface KeysOutput {
  /** stdout: the key of `create` and nothing else, so that a script can capture it; `list`'s table. */
  out(line: string): void;
  /** stderr: everything said to the operator. */
  err(line: string): void;
}

export const KEYS_USAGE = `Usage:
  keys create --user <user id> [--label <text>]   a user's key: printed once, on stdout
  keys create --admin [--label <text>]            an operator's key (sees and acts for every user)
  keys revoke <key id>                            the key stops working in every running service
  keys list [--user <user id>]                    the keys (never their secrets)`;

const KEY_ID = /^[0-9a-f]{16}$/;

class UsageError extends Error {
  constructor(message: string) {
    super(`${message}\n${KEYS_USAGE}`);
    this.name = 'UsageError';
  }
}

function checkedUserId(userId: string): string {
  const parsed = userIdText().safeParse(userId);
  if (!parsed.success) throw new UsageError(`--user ${parsed.error.issues[0]?.message ?? 'is not valid'}`);
  return parsed.data;
}

function checkedLabel(label: string | undefined): string | null {
  if (label === undefined) return null;
  const parsed = storableText()
    .refine((text) => text.length <= 200, 'must be at most 200 characters')
    .safeParse(label);
  if (!parsed.success) throw new UsageError(`--label ${parsed.error.issues[0]?.message ?? 'is not valid'}`);
  return parsed.data;
}

const when = (at: Date | null) => (at ? at.toISOString() : '-');

function table(keys: readonly ApiKeyRecord[]): string[] {
  const rows = [
    ['KEY ID', 'ROLE', 'USER', 'LABEL', 'CREATED', 'REVOKED'],
    ...keys.map((k) => [
      k.key_id,
      k.role,
      k.user_id ?? '*',
      k.label ?? '',
      when(k.created_at),
      when(k.revoked_at),
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => row[i]?.length ?? 0))) ?? [];
  return rows.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}

/**
 * `keys create|revoke|list`: API keys, kept hashed in `api_keys`. A created key is shown once and
 * cannot be shown again; a change is announced (NOTIFY api_keys_changed) to the running services.
 * @throws Error with the usage for a malformed command, or naming what went wrong.
 */
export async function runKeysCommand(
  args: readonly string[],
  store: ApiKeyStore,
  output: KeysOutput,
): Promise<void> {
  const [action, ...rest] = args;
  let parsed;
  try {
    parsed = parseArgs({
      args: [...rest],
      allowPositionals: true,
      strict: true,
      options: {
        user: { type: 'string' },
        admin: { type: 'boolean' },
        label: { type: 'string' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;

  switch (action) {
    case 'create': {
      if (positionals.length > 0) throw new UsageError(`Unexpected argument "${positionals[0]}"`);
      if ((values.user === undefined) === (values.admin !== true))
        throw new UsageError('Give either --user <user id> or --admin');
      const userId = values.user === undefined ? null : checkedUserId(values.user);
      const label = checkedLabel(values.label);
      const key = issueKey();
      await store.create({
        keyId: key.keyId,
        role: userId === null ? 'admin' : 'user',
        userId,
        hash: key.hash,
        label,
      });
      output.out(key.text);
      output.err(
        `Created ${userId === null ? 'an admin key' : `a key for user "${userId}"`} with id ${key.keyId}` +
          `${label === null ? '' : ` (${label})`}. It is shown this once and stored only hashed: keep it now.`,
      );
      return;
    }
    case 'revoke': {
      const [keyId, extra] = positionals;
      if (
        keyId === undefined ||
        extra !== undefined ||
        values.user !== undefined ||
        values.admin ||
        values.label
      )
        throw new UsageError('Give exactly one key id');
      if (!KEY_ID.test(keyId))
        // Not quoted: it may be a whole key, pasted by mistake.
        throw new UsageError('That is not a key id (16 hex digits, as "keys list" shows them)');
      const outcome = await store.revoke(keyId);
      if (outcome.status === 'unknown') throw new Error(`There is no key with id ${keyId}`);
      output.err(
        outcome.status === 'revoked'
          ? `Revoked key ${keyId}; running services stop accepting it now.`
          : `Key ${keyId} was already revoked (${outcome.revokedAt.toISOString()}).`,
      );
      return;
    }
    case 'list': {
      if (positionals.length > 0 || values.admin || values.label !== undefined)
        throw new UsageError('list takes only --user <user id>');
      const keys = await store.list(values.user === undefined ? {} : { userId: checkedUserId(values.user) });
      for (const line of table(keys)) output.out(line);
      output.err(`${keys.length} key(s), ${keys.filter((k) => !k.revoked_at).length} in use.`);
      return;
    }
    default:
      throw new UsageError(action === undefined ? 'Name an action' : `Unknown action "${action}"`);
  }
}
