import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/app/ports/database.ts';
import { MIGRATIONS_DIR } from '../../src/infra/migrations.ts';
import { createReadinessProbe } from '../../src/infra/readiness.ts';
import { migratedPglite } from '../helpers/databases.ts';

describe('the readiness probe', () => {
  let db: Database;
  let dir: string;
  beforeAll(async () => {
    db = await migratedPglite();
    dir = await mkdtemp(join(tmpdir(), 'migrations-'));
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
  });
  afterAll(async () => {
    await db?.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe('when the migrations folder holds a migration the database has not applied', () => {
    it('is not ready, naming the pending migration', async () => {
      await writeFile(join(dir, '999_next_feature.sql'), 'SELECT 1;');
      const probe = createReadinessProbe({ db, migrationsDir: pathToFileURL(`${dir}/`) });
      expect(await probe.check()).toEqual({
        ready: false,
        checks: {
          database: { ok: true },
          migrations: { ok: false, detail: 'pending: 999_next_feature.sql' },
        },
      });
    });
  });

  describe('when every migration is applied and no broker is used', () => {
    it('is ready, and checks no broker', async () => {
      expect(await createReadinessProbe({ db }).check()).toEqual({
        ready: true,
        checks: { database: { ok: true }, migrations: { ok: true } },
      });
    });
  });
});
