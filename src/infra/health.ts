import type { Database } from '../app/ports/database.ts';
import type { HealthProbe } from '../app/ports/health.ts';

/** The health probe on `db`: a partial index on unpublished outbox rows keeps the count cheap. */
export function createHealthProbe(db: Database): HealthProbe {
  return {
    database: db.kind,
    async outboxBacklog() {
      const [row] = await db.query<{ unpublished: number }>(
        'SELECT count(*)::int AS unpublished FROM outbox WHERE NOT published',
      );
      return row?.unpublished ?? 0;
    },
  };
}
