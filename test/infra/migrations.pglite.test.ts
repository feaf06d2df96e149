import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgliteDatabase } from '../../src/infra/db/pglite.ts';
import type { Database } from '../../src/app/ports/database.ts';
import { migrate, readMigrations } from '../../src/infra/migrations.ts';

async function migrationDir(files: Record<string, string>): Promise<URL> {
  const dir = await mkdtemp(join(tmpdir(), 'migrations-'));
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  return pathToFileURL(`${dir}/`);
}

describe('migrations on PGlite', () => {
  let db: Database;
  beforeAll(async () => {
    db = await pgliteDatabase();
  });
  afterAll(async () => {
    await db.close();
  });

  describe('when the shipped migrations run twice', () => {
    it('applies every file once, in order, and nothing the second time', async () => {
      const files = await readMigrations();
      expect(await migrate(db)).toEqual(files.map((f) => f.name));
      expect(await migrate(db)).toEqual([]);
      const rows = await db.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.name)).toEqual(files.map((f) => f.name));
      const tables = await db.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
      );
      expect(tables.map((t) => t.table_name)).toEqual(
        expect.arrayContaining(['events', 'outbox', 'processed_events', 'schema_migrations']),
      );
    });
  });

  describe('when a file fails', () => {
    it('rolls that file back, keeps the ones before it, and applies it once fixed', async () => {
      const scratch = await pgliteDatabase();
      const broken = await migrationDir({
        '001_a.sql': 'CREATE TABLE a (id int);',
        '002_b.sql': 'CREATE TABLE b (id int); SELECT no_such_function();',
      });
      await expect(migrate(scratch, { dir: broken })).rejects.toThrow(/no_such_function/);
      const tables = await scratch.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_name IN ('a', 'b')`,
      );
      expect(tables.map((t) => t.table_name)).toEqual(['a']);

      const fixed = await migrationDir({
        '001_a.sql': 'CREATE TABLE a (id int);',
        '002_b.sql': 'CREATE TABLE b (id int);',
      });
      expect(await migrate(scratch, { dir: fixed })).toEqual(['002_b.sql']);
      await scratch.close();
    });
  });

  describe('when an applied file was edited', () => {
    it('refuses to start and names the file', async () => {
      const scratch = await pgliteDatabase();
      await migrate(scratch, { dir: await migrationDir({ '001_a.sql': 'CREATE TABLE a (id int);' }) });
      const edited = await migrationDir({ '001_a.sql': 'CREATE TABLE a (id bigint);' });
      await expect(migrate(scratch, { dir: edited })).rejects.toThrow(
        /001_a\.sql was changed after it was applied/,
      );
      await scratch.close();
    });
  });
});
