import type { DueReconciliation, SwapAudit, SwapFinding } from '../app/swapAudit.ts';
import type { Queryable } from '../app/ports/database.ts';

/** SwapAudit on the swap_reconciliations table (migration 009), for PostgreSQL and PGlite alike. */
export function createSwapAudit(db: Queryable): SwapAudit {
  return {
    claimDue: (limit, retryAfterMs) =>
      db.query<DueReconciliation>(
        `WITH due AS (
           SELECT order_id FROM swap_reconciliations
           WHERE venue_outcome IS NULL
             AND (checked_at IS NULL OR checked_at < now() - $2 * interval '1 millisecond')
           ORDER BY checked_at NULLS FIRST
           LIMIT $1
           FOR UPDATE SKIP LOCKED)
         UPDATE swap_reconciliations r SET checked_at = now(), attempts = r.attempts + 1
         FROM due WHERE r.order_id = due.order_id
         RETURNING r.order_id::text AS order_id, r.idempotency_key, r.attempts`,
        [limit, retryAfterMs],
      ),
    async record(finding: SwapFinding) {
      // The row exists once OrderFailed is stored (trigger); a saga's finding may come first only
      // if it raced that commit, hence the insert. failed_at is then the finding's time.
      await db.query(
        `INSERT INTO swap_reconciliations
           (order_id, idempotency_key, failed_at, venue_outcome, tx_hash, found_by, settled_at)
         VALUES ($1, $2, now(), $3, $4, $5, now())
         ON CONFLICT (order_id) DO UPDATE
         SET venue_outcome = EXCLUDED.venue_outcome, tx_hash = EXCLUDED.tx_hash,
             found_by = EXCLUDED.found_by, settled_at = EXCLUDED.settled_at
         WHERE swap_reconciliations.venue_outcome IS DISTINCT FROM 'executed'`,
        [
          finding.order_id,
          finding.idempotency_key,
          finding.outcome,
          finding.tx_hash ?? null,
          finding.found_by,
        ],
      );
    },
  };
}
