import type { Queryable } from '../app/ports/database.ts';
import type { ReadinessCheck, ReadinessProbe, ReadinessReport } from '../app/ports/health.ts';
import { readMigrations } from './migrations.ts';

/** A broker connection of this process (the relay's, a consumer's): up or not. */
export interface BrokerLink {
  readonly name: string;
  readonly connected: boolean;
}

export interface ReadinessOptions {
  readonly db: Queryable;
  /**
   * This process's broker connections (its relay, its consumers); undefined when AMQP_URL is not
   * set. An empty list (say an `api`-only process, which needs no broker) checks nothing.
   */
  readonly broker?: () => readonly BrokerLink[];
  /** Longest wait for the database's answer before it counts as unreachable (default 2 s). */
  readonly timeoutMs?: number;
  /** The migrations folder (default the shipped one). */
  readonly migrationsDir?: URL;
}

const OK: ReadinessCheck = { ok: true };

/**
 * `GET /ready`: the database answers (one small query, bounded by `timeoutMs`: a database behind a
 * dropped network may never answer), every migration of the migrations folder is applied, and,
 * with RabbitMQ, every broker connection of this process is up. A failing check names what is down.
 */
export function createReadinessProbe(options: ReadinessOptions): ReadinessProbe {
  const timeoutMs = options.timeoutMs ?? 2_000;
  // The folder does not change while the process runs: read once.
  let files: Promise<{ version: number; name: string }[]> | undefined;
  const migrationFiles = () => {
    files ??= readMigrations(options.migrationsDir).catch((error: unknown) => {
      files = undefined;
      throw error;
    });
    return files;
  };

  async function applied(): Promise<Set<number>> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const rows = await Promise.race([
        options.db.query<{ version: number }>('SELECT version FROM schema_migrations'),
        timeout,
      ]);
      return new Set(rows.map((row) => Number(row.version)));
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async check(): Promise<ReadinessReport> {
      const checks: Record<string, ReadinessCheck> = {};
      try {
        const done = await applied();
        checks.database = OK;
        const pending = (await migrationFiles()).filter((file) => !done.has(file.version));
        checks.migrations =
          pending.length === 0
            ? OK
            : { ok: false, detail: `pending: ${pending.map((file) => file.name).join(', ')}` };
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        checks.database = { ok: false, detail: `unreachable: ${reason}` };
        checks.migrations = { ok: false, detail: 'unknown while the database is unreachable' };
      }
      if (options.broker) {
        const down = options.broker().filter((link) => !link.connected);
        checks.broker =
          down.length === 0
            ? OK
            : { ok: false, detail: `not connected: ${down.map((link) => link.name).join(', ')}` };
      }
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    },
  };
}
