import type { Queryable } from '../app/ports/database.ts';
import type { ClaimedSaga, OpenSagas } from '../app/sweeper.ts';

/** OpenSagas on the `open_sagas` table (migration 007), for PostgreSQL and PGlite alike. */
export function createOpenSagas(db: Queryable): OpenSagas {
  return {
    claimDue: (staleMs, limit) =>
      db.query<ClaimedSaga>(
        `WITH due AS (
           SELECT s.order_id,
                  (SELECT max(e.created_at) FROM events e WHERE e.aggregate_id = s.order_id)
                    < now() - $1 * interval '1 millisecond' AS stalled
           FROM open_sagas s
           WHERE s.checked_at < now() - $1 * interval '1 millisecond'
           ORDER BY s.checked_at
           LIMIT $2
           FOR UPDATE OF s SKIP LOCKED)
         UPDATE open_sagas o
         SET checked_at = now(), resumes = o.resumes + CASE WHEN due.stalled THEN 1 ELSE 0 END
         FROM due
         WHERE o.order_id = due.order_id
         RETURNING o.order_id::text AS order_id, due.stalled, o.resumes`,
        [staleMs, limit],
      ),
  };
}
