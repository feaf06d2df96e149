import { randomUUID } from 'node:crypto';
import { pgliteDatabase } from '../../src/infra/db/pglite.ts';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import type { Database } from '../../src/infra/db/port.ts';
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
