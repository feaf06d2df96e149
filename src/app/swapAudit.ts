import pLimit from 'p-limit';
import type { Logger } from './ports/logger.ts';
import { asTransient, TransientError } from './ports.ts';
import type { SwapOutcome, TradeVenue } from './ports.ts';

/**
 * Reconciliation: the venue's word on the swaps of failed orders, against our events.
 *
 * The saga compensates an order whose swap it sent only after the venue settled the key
 * (`voided`, or a rejection). Reconciliation asks the venue once more, independently: a venue
 * that breaks its contract, or a bug of ours, must show up as a recorded anomaly and an alert, not
 * as money that moved for an order we told the user had failed.
 */

/** A failed order whose swap the venue has not yet answered for. */
export interface DueReconciliation {
  readonly order_id: string;
  readonly idempotency_key: string;
  readonly attempts: number;
}

/** The venue's definitive word on a failed order's swap. */
export interface SwapFinding {
  readonly order_id: string;
  readonly idempotency_key: string;
  readonly outcome: 'voided' | 'rejected' | 'executed';
  readonly tx_hash?: string;
  /** Who learnt it: a saga worker holding an execution for an order another had failed, or the reconciler. */
  readonly found_by: 'saga' | 'reconcile';
}

/** Where reconciliation keeps its work list and findings (table swap_reconciliations). */
export interface SwapAudit {
  /**
   * Claims up to `limit` failed orders whose swap is not settled and that no reconciler asked
   * about for `retryAfterMs` (FOR UPDATE SKIP LOCKED: several sweepers share the list).
   */
  claimDue(limit: number, retryAfterMs: number): Promise<DueReconciliation[]>;
  /** Records a finding; an `executed` one is never overwritten by a later, milder one. */
  record(finding: SwapFinding): Promise<void>;
}

export interface ReconcilerOptions {
  readonly audit: SwapAudit;
  readonly venue: TradeVenue;
  readonly logger: Logger;
  /** A venue call gives up after this long (default 2 s). */
  readonly callTimeoutMs?: number;
  /** An order the venue could not answer for is asked again after this long (default 30 s). */
  readonly retryAfterMs?: number;
  /** Orders claimed per round (default 64). */
  readonly batchSize?: number;
  /** Venue calls at once (default 8). */
  readonly concurrency?: number;
}

export interface ReconcileReport {
  readonly examined: number;
  readonly settled: number;
  /** Swaps the venue executed for orders we recorded as failed. */
  readonly anomalies: number;
  /** The venue could not be asked; tried again after `retryAfterMs`. */
  readonly unreachable: number;
  /** A full batch was claimed: more may be due at once. */
  readonly more: boolean;
}

/** Logs the alert an operator must act on: money moved for an order recorded as failed. */
export function alertExecutedSwapOfFailedOrder(logger: Logger, finding: SwapFinding): void {
  logger.error(
    {
      alert: 'executed_swap_of_failed_order',
      orderId: finding.order_id,
      idempotencyKey: finding.idempotency_key,
      txHash: finding.tx_hash,
      foundBy: finding.found_by,
    },
    'ALERT: the venue executed the swap of an order recorded as failed; an operator must settle it',
  );
}

/**
 * Asks the venue to void the key of every failed order that sent a swap. Voiding is the question
 * that settles it: a key not executed is refused forever from then on (so a request still
 * queued somewhere can never execute later), and an executed one answers its execution. A failed
 * order is final (nothing follows its terminal event), so an execution found here cannot
 * complete it any more: it is recorded and alerted for an operator.
 */
export function createReconciler(options: ReconcilerOptions) {
  const { audit, venue, logger } = options;
  const callTimeoutMs = options.callTimeoutMs ?? 2_000;
  const retryAfterMs = options.retryAfterMs ?? 30_000;
  const batchSize = options.batchSize ?? 64;
  const limit = pLimit(options.concurrency ?? 8);

  async function settle(due: DueReconciliation): Promise<'settled' | 'anomaly' | 'unreachable'> {
    let outcome: SwapOutcome;
    try {
      outcome = await venue
        .voidSwap(due.idempotency_key, AbortSignal.timeout(callTimeoutMs))
        .catch(asTransient);
    } catch (error) {
      if (!(error instanceof TransientError)) throw error;
      logger.warn(
        { err: error, orderId: due.order_id, attempts: due.attempts },
        'reconcile: venue unreachable',
      );
      return 'unreachable';
    }
    const finding: SwapFinding = {
      order_id: due.order_id,
      idempotency_key: due.idempotency_key,
      outcome: outcome.status,
      ...(outcome.status === 'executed' ? { tx_hash: outcome.tx_hash } : {}),
      found_by: 'reconcile',
    };
    await audit.record(finding);
    if (outcome.status !== 'executed') return 'settled';
    alertExecutedSwapOfFailedOrder(logger, finding);
    return 'anomaly';
  }

  return {
    /** One round: claims the due failed orders and asks the venue about each. */
    async reconcileOnce(): Promise<ReconcileReport> {
      const due = await audit.claimDue(batchSize, retryAfterMs);
      const results = await Promise.all(due.map((row) => limit(() => settle(row))));
      const tally = (key: (typeof results)[number]) => results.filter((r) => r === key).length;
      return {
        examined: due.length,
        settled: tally('settled'),
        anomalies: tally('anomaly'),
        unreachable: tally('unreachable'),
        more: due.length === batchSize,
      };
    },
  };
}

export type Reconciler = ReturnType<typeof createReconciler>;
