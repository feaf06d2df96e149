import { Buffer } from 'node:buffer';
import { API_KEYS_CHANGED } from '../app/apiKeys.ts';
import type { ApiKeyRecord, ApiKeyStore, KeyRole, RevokeOutcome } from '../app/apiKeys.ts';
import type { Database, Queryable } from '../app/ports/database.ts';

interface KeyRow {
  key_id: string;
  role: KeyRole;
  user_id: string | null;
  hash: string;
}

/** Announced in the changing transaction: listeners hear of it once it commits, never before. */
const announce = (tx: Queryable, keyId: string) =>
  tx.query('SELECT pg_notify($1, $2)', [API_KEYS_CHANGED, keyId]);

/** ApiKeyStore on the `api_keys` table (migration 012), for PostgreSQL and PGlite alike. */
export function createApiKeyStore(db: Database): ApiKeyStore {
  return {
    async loadActive() {
      const rows = await db.query<KeyRow>(
        'SELECT key_id, role, user_id, hash FROM api_keys WHERE revoked_at IS NULL',
      );
      const [any] = await db.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM api_keys) AS any');
      return {
        keys: rows.map((row) => ({
          keyId: row.key_id,
          role: row.role,
          userId: row.user_id,
          hash: Buffer.from(row.hash, 'hex'),
        })),
        anyCreated: any?.any === true,
      };
    },

    create: (key) =>
      db.transaction(async (tx) => {
        await tx.query(
          'INSERT INTO api_keys (key_id, role, user_id, hash, label) VALUES ($1, $2, $3, $4, $5)',
          [key.keyId, key.role, key.userId, key.hash.toString('hex'), key.label],
        );
        await announce(tx, key.keyId);
      }),

    revoke: (keyId) =>
      db.transaction(async (tx): Promise<RevokeOutcome> => {
        const [revoked] = await tx.query<{ revoked_at: Date }>(
          'UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING revoked_at',
          [keyId],
        );
        if (revoked) {
          await announce(tx, keyId);
          return { status: 'revoked', revokedAt: revoked.revoked_at };
        }
        const [existing] = await tx.query<{ revoked_at: Date }>(
          'SELECT revoked_at FROM api_keys WHERE key_id = $1',
          [keyId],
        );
        return existing
          ? { status: 'already_revoked', revokedAt: existing.revoked_at }
          : { status: 'unknown' };
      }),

    list: (options = {}) =>
      db.query<ApiKeyRecord>(
        `SELECT key_id, role, user_id, label, created_at, revoked_at FROM api_keys
         WHERE $1::text IS NULL OR user_id = $1 ORDER BY created_at DESC, key_id`,
        [options.userId ?? null],
      ),

    watch: (onChange) => db.listen(API_KEYS_CHANGED, () => onChange()),
  };
}
