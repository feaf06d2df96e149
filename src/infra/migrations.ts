import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import type { Database } from '../app/ports/database.ts';
import type { Logger } from './logger.ts';

/** Migrations shipped with the service, next to `src/`. */
export const MIGRATIONS_DIR = new URL('../../migrations/', import.meta.url);

/** Arbitrary but fixed: every process that migrates this database takes the same lock. */
const MIGRATION_LOCK_KEY = 727_001;

const FILE_NAME = /^(\d+)_[\w-]+\.sql$/;

export interface MigrationFile {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

export async function readMigrations(dir: URL = MIGRATIONS_DIR): Promise<MigrationFile[]> {
  const names = (await readdir(dir)).filter((name) => FILE_NAME.test(name));
  const files = await Promise.all(
    names.map(async (name) => {
      const sql = await readFile(new URL(name, dir), 'utf8');
      const version = Number(FILE_NAME.exec(name)?.[1]);
      return { version, name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    }),
  );
  files.sort((a, b) => a.version - b.version);
  for (let i = 1; i < files.length; i++) {
    if (files[i]?.version === files[i - 1]?.version) {
      throw new Error(
        `Two migrations share version ${files[i]?.version}: ${files[i - 1]?.name}, ${files[i]?.name}`,
      );
    }
  }
  return files;
}

/**
 * Applies pending migrations once, in order, each in its own transaction. Each transaction first
 * takes a transaction-scoped advisory lock and re-checks what is applied, so processes that start
 * at the same time apply every file exactly once. A file changed after it was applied is refused:
 * migrations are forward-only.
 *
 * @returns the names of the files applied by this call.
 */
export async function migrate(
  db: Database,
  options: { readonly dir?: URL; readonly logger?: Logger } = {},
): Promise<string[]> {
  const files = await readMigrations(options.dir);
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INT PRIMARY KEY,
      name       TEXT NOT NULL,
      checksum   TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`);
  });

  const applied: string[] = [];
  for (const file of files) {
    const didApply = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      const [existing] = await tx.query<{ name: string; checksum: string }>(
        'SELECT name, checksum FROM schema_migrations WHERE version = $1',
        [file.version],
      );
      if (existing) {
        if (existing.checksum !== file.checksum) {
          throw new Error(
            `Migration ${file.name} was changed after it was applied (applied as ${existing.name}); add a new migration instead`,
          );
        }
        return false;
      }
      await tx.exec(file.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        file.version,
        file.name,
        file.checksum,
      ]);
      return true;
    });
    if (didApply) {
      applied.push(file.name);
      options.logger?.info({ migration: file.name }, 'migration applied');
    }
  }
  return applied;
}
