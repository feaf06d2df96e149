import v8 from 'node:v8';
import type { Config } from '../config.ts';
import type { Database } from '../app/ports/database.ts';
import { lockDataDir } from '../infra/db/dataDirLock.ts';
import { pgliteDatabase } from '../infra/db/pglite.ts';
import { postgresDatabase } from '../infra/db/postgres.ts';
import type { Logger } from '../infra/logger.ts';
import { migrate } from '../infra/migrations.ts';

export interface Opened {
  readonly db: Database;
  /** Closes the database and releases what guards it. */
  close(): Promise<void>;
}

/** PostgreSQL from DATABASE_URL, else the embedded PGlite under DATA_DIR (locked for this process). */
export async function openDatabase(config: Config, logger: Logger): Promise<Opened> {
  if (config.databaseUrl) {
    logger.info({ database: 'postgres' }, 'using PostgreSQL from DATABASE_URL');
    const db = postgresDatabase(config.databaseUrl, { max: config.databasePoolSize });
    return { db, close: () => db.close() };
  }
  // The embedded database shares this process's memory: keep the JS heap small. Without it V8 let
  // the young generation take 32 MB and the old one grow to ~85 MB (a quarter of it live) under
  // load, and the service stood at ~360 MB after 2,000 orders; with it ~290 MB, at no CPU cost we
  // could measure (bench:embedded). Set at run time, as `npm start` serves PostgreSQL too.
  v8.setFlagsFromString('--optimize-for-size');
  const release = await lockDataDir(config.dataDir, logger);
  logger.info(
    { database: 'pglite', dataDir: config.dataDir, sharedBuffers: config.pgliteSharedBuffers },
    'using embedded PGlite',
  );
  const db = await pgliteDatabase(config.dataDir, {
    settings: { shared_buffers: config.pgliteSharedBuffers },
  });
  return {
    db,
    async close() {
      await db.close();
      await release();
    },
  };
}

/**
 * Opens the database, applies the migrations (every command works on the current schema), runs
 * `work` and closes it whatever happens.
 * @returns what `work` returned and the migrations that were applied.
 */
export async function withMigratedDatabase<T>(
  config: Config,
  logger: Logger,
  work: (db: Database, applied: readonly string[]) => Promise<T>,
): Promise<T> {
  const opened = await openDatabase(config, logger);
  try {
    const applied = await migrate(opened.db, { logger });
    return await work(opened.db, applied);
  } finally {
    await opened.close();
  }
}
