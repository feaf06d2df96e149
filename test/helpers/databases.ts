import { randomUUID } from 'node:crypto';
import { pgliteDatabase } from '../../src/infra/db/pglite.ts';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { migrate } from '../../src/infra/migrations.ts';

export const DATABASE_URL = process.env.DATABASE_URL;

/** A fresh in-memory PGlite with the schema applied (initdb takes a few seconds: share per file). */
export async function migratedPglite(): Promise<Database> {
  const db = await pgliteDatabase();
  await migrate(db);
  return db;
}

/** The PostgreSQL of DATABASE_URL with the schema applied; tests isolate themselves by fresh ids. */
export async function migratedPostgres(options: { max?: number } = {}): Promise<Database> {
  if (!DATABASE_URL) throw new Error('DATABASE_URL is not set');
  const db = postgresDatabase(DATABASE_URL, options);
  await migrate(db);
  return db;
}

export const newId = (): string => randomUUID();

export async function countRows(db: Database, table: 'events' | 'outbox', aggregateIds: readonly string[]) {
  const [row] = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${table} WHERE aggregate_id = ANY($1::uuid[])`,
    [aggregateIds],
  );
  return row?.n ?? 0;
}

/**
 * A database of its own on the PostgreSQL of DATABASE_URL, migrated: for tests that act on every
 * row rather than on their own ids (the sweeper claims every open saga). `drop()` closes and drops it.
 */
export async function scratchPostgres(
  options: { max?: number } = {},
): Promise<{ db: Database; url: string; drop(): Promise<void> }> {
  if (!DATABASE_URL) throw new Error('DATABASE_URL is not set');
  const admin = postgresDatabase(DATABASE_URL, { max: 1 });
  const name = `scratch_${randomUUID().replaceAll('-', '')}`;
  await admin.exec(`CREATE DATABASE ${name}`);
  const url = new URL(DATABASE_URL);
  url.pathname = `/${name}`;
  const db = postgresDatabase(url.toString(), options);
  await migrate(db);
  return {
    db,
    url: url.toString(),
    async drop() {
      await db.close();
      await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.close();
    },
  };
}

/** `db` with the statements it runs counted. */
export function counted(db: Database) {
  const count = { statements: 0 };
  const wrapped: Database = {
    ...db,
    query: (text, params) => {
      count.statements++;
      return db.query(text, params);
    },
  };
  return { db: wrapped, count };
}
