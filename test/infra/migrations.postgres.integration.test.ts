import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { postgresDatabase } from '../../src/infra/db/postgres.ts';
import { migrate, readMigrations } from '../../src/infra/migrations.ts';
import { DATABASE_URL } from '../helpers/databases.ts';

// Needs a PostgreSQL server: DATABASE_URL (CI always sets it; see .ci/run).
describe.runIf(DATABASE_URL)('migrations on PostgreSQL', () => {
  describe('when four processes start at once on an empty database', () => {
    it('applies every file exactly once', async () => {
      const admin = postgresDatabase(DATABASE_URL ?? '', { max: 1 });
      const name = `migrate_${randomUUID().replaceAll('-', '')}`;
      await admin.exec(`CREATE DATABASE ${name}`);
      const url = new URL(DATABASE_URL ?? '');
      url.pathname = `/${name}`;
      const processes = Array.from({ length: 4 }, () => postgresDatabase(url.toString(), { max: 2 }));
      try {
        const applied = await Promise.all(processes.map((db) => migrate(db)));

        const files = (await readMigrations()).map((f) => f.name);
        expect(applied.flat().sort()).toEqual([...files].sort());
        const [first] = processes;
        const rows = await first!.query<{ name: string }>(
          'SELECT name FROM schema_migrations ORDER BY version',
        );
        expect(rows.map((r) => r.name)).toEqual(files);
      } finally {
        await Promise.all(processes.map((db) => db.close()));
        await admin.exec(`DROP DATABASE ${name}`);
        await admin.close();
      }
    });
  });
});
