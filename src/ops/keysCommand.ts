import { issueKey } from '../app/apiKeys.ts';
import type { ApiKeyRecord, ApiKeyStore } from '../app/apiKeys.ts';
import { storableText, userIdText } from '../http/fields.ts';

/**
 * `keys create|revoke|list`: API keys, kept hashed in `api_keys`. A created key is shown once and
 * cannot be shown again; a change is announced (NOTIFY api_keys_changed) to the running services.
 * The command line is parsed in src/cli/keys.ts; these are its checks and actions.
 */

export interface KeysOutput {
  /** stdout: the key of `create` and nothing else, so that a script can capture it; `list`'s table. */
  readonly out: (line: string) => void;
  /** stderr: everything said to the operator. */
  readonly err: (line: string) => void;
}

/** `keys revoke` found no key with that id. */
export class UnknownKeyError extends Error {
  constructor(keyId: string) {
    super(`There is no key with id ${keyId}`);
    this.name = 'UnknownKeyError';
  }
}

const KEY_ID = /^[0-9a-f]{16}$/;

/** A user id by the API's own rules. @throws Error saying why it is refused. */
export function checkedUserId(userId: string): string {
  const parsed = userIdText().safeParse(userId);
  if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? 'is not valid');
  return parsed.data;
}

/** A key's label: storable text of at most 200 characters. @throws Error saying why it is refused. */
export function checkedLabel(label: string): string {
  const parsed = storableText()
    .refine((text) => text.length <= 200, 'must be at most 200 characters')
    .safeParse(label);
  if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? 'is not valid');
  return parsed.data;
}

/** Whether `keyId` is a key id (16 hex digits), as `keys list` shows them. */
export const isKeyId = (keyId: string): boolean => KEY_ID.test(keyId);

/** Issues a key for a user (or an admin key when `userId` is null) and prints it, alone, on `out`. */
export async function createKey(
  store: ApiKeyStore,
  options: { readonly userId: string | null; readonly label: string | null },
  output: KeysOutput,
): Promise<void> {
  const { userId, label } = options;
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
}

/** Revokes a key; running services stop accepting it. @throws UnknownKeyError */
export async function revokeKey(store: ApiKeyStore, keyId: string, output: KeysOutput): Promise<void> {
  const outcome = await store.revoke(keyId);
  if (outcome.status === 'unknown') throw new UnknownKeyError(keyId);
  output.err(
    outcome.status === 'revoked'
      ? `Revoked key ${keyId}; running services stop accepting it now.`
      : `Key ${keyId} was already revoked (${outcome.revokedAt.toISOString()}).`,
  );
}

const when = (at: Date | null) => (at ? at.toISOString() : '-');

/** The keys (never their secrets). */
export async function listKeys(
  store: ApiKeyStore,
  options: { readonly userId?: string | undefined },
): Promise<ApiKeyRecord[]> {
  return store.list(options.userId === undefined ? {} : { userId: options.userId });
}

/** `keys list`'s rows under its header. */
export function keyRows(keys: readonly ApiKeyRecord[]): { header: string[]; rows: string[][] } {
  return {
    header: ['KEY ID', 'ROLE', 'USER', 'LABEL', 'CREATED', 'REVOKED'],
    rows: keys.map((k) => [
      k.key_id,
      k.role,
      k.user_id ?? '*',
      k.label ?? '',
      when(k.created_at),
      when(k.revoked_at),
    ]),
  };
}
