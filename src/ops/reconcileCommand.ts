import { failpoint } from '../app/failpoints.ts';
import { createReconciler } from '../app/swapAudit.ts';
import type { DueReconciliation, SwapAudit, SwapFinding } from '../app/swapAudit.ts';
import type { TradeVenue } from '../app/ports.ts';
import type { Logger } from '../app/ports/logger.ts';
import type { Queryable } from '../app/ports/database.ts';
import { createSwapAudit } from '../infra/swapAudit.ts';

/** What one pass of `reconcile` found. */
export interface ReconcilePass {
  /** Failed orders whose swap was due for the venue's word. */
  readonly examined: number;
  /** The venue's answers, recorded (an `executed` one is an anomaly: money moved for a failed order). */
  readonly findings: readonly Omit<SwapFinding, 'found_by'>[];
  /** Orders the venue could not answer for: asked again after `retryAfterMs` (30 s). */
  readonly unreachable: readonly string[];
  readonly anomalies: number;
}

/**
 * `reconcile`: one pass of the sweeper's swap reconciliation, at once rather than on its schedule:
 * every failed order whose swap the venue has not yet answered for is asked about (voiding it),
 * and the answers are recorded as the sweeper records them. The audit is watched on its way so
 * that the pass can say what it found, order by order, not only counts.
 */
export async function reconcileOnce(
  db: Queryable,
  venue: TradeVenue,
  logger: Logger,
  options: { readonly callTimeoutMs?: number; readonly batchSize?: number } = {},
): Promise<ReconcilePass> {
  const audit = createSwapAudit(db);
  const claimed: DueReconciliation[] = [];
  const findings: SwapFinding[] = [];
  const watched: SwapAudit = {
    async claimDue(limit, retryAfterMs) {
      const due = await audit.claimDue(limit, retryAfterMs);
      claimed.push(...due);
      return due;
    },
    async record(finding) {
      await audit.record(finding);
      findings.push(finding);
      failpoint('reconcile.mid-run');
    },
  };
  const reconciler = createReconciler({
    audit: watched,
    venue,
    logger,
    ...(options.callTimeoutMs === undefined ? {} : { callTimeoutMs: options.callTimeoutMs }),
    ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
  });
  // A full batch means more may be due; an order the venue could not answer is not claimed again
  // within retryAfterMs, so this ends.
  while ((await reconciler.reconcileOnce()).more);
  const answered = new Set(findings.map((f) => f.order_id));
  return {
    examined: claimed.length,
    findings: findings.map(({ found_by: _, ...finding }) => finding),
    unreachable: claimed.filter((c) => !answered.has(c.order_id)).map((c) => c.order_id),
    anomalies: findings.filter((f) => f.outcome === 'executed').length,
  };
}
