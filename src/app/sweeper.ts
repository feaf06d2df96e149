import pLimit from 'p-limit';
import type { IdempotencyKeys } from './ports/idempotencyKeys.ts';
import type { Logger } from './ports/logger.ts';
import type { SagaRunner } from './sagaRunner.ts';
import type { Reconciler } from './swapAudit.ts';

/** An open saga a sweeper claimed: no other sweeper looks at it for `staleMs`. */
export interface ClaimedSaga {
  readonly order_id: string;
  /** Its order stream has had no new event for `staleMs`: resume it. */
  readonly stalled: boolean;
  /** How many times sweepers found it stalled, this claim included. */
  readonly resumes: number;
}

/**
 * The sagas that have not ended (table `open_sagas`, kept by a trigger on `events`);
 * src/infra/openSagas.ts implements it.
 */
export interface OpenSagas {
  /**
   * Claims up to `limit` open sagas that no sweeper looked at for `staleMs`, oldest look first,
   * and marks them looked at now (FOR UPDATE SKIP LOCKED: several sweepers share the work).
   * Database time throughout, so the processes' clocks do not matter.
   */
  claimDue(staleMs: number, limit: number): Promise<ClaimedSaga[]>;
}

export interface SweeperOptions {
  readonly openSagas: OpenSagas;
  readonly runner: SagaRunner;
  readonly logger: Logger;
  /**
   * A saga whose order stream has had no new event for this long has stalled, and so has one
   * that nobody has looked at since: resume it (default 60 s). Keep it well above a step's
   * longest run (call timeout × retries), or a slow saga gets a second, harmless but wasted, driver.
   */
  readonly staleMs?: number;
  /** Pause between sweeps (default 5 s). */
  readonly intervalMs?: number;
  /** Open sagas claimed per query (default 64). */
  readonly batchSize?: number;
  /** Stalled sagas driven at once (default 8). */
  readonly concurrency?: number;
  /** Asks the venue about the swaps of failed orders, once per sweep (see swapAudit.ts). */
  readonly reconciler?: Reconciler;
  /** Order requests' Idempotency-Keys: the expired ones are deleted, once per sweep. */
  readonly idempotencyKeys?: Pick<IdempotencyKeys, 'deleteExpired'>;
  /** The clock keys expire by (the one that set their expiry). */
  readonly now?: () => Date;
  /** Raises and resolves the operator's alerts, once per sweep (see alerts.ts). */
  readonly alerts?: { evaluateOnce(): Promise<unknown> };
}

/** Expired Idempotency-Keys deleted per statement. */
const KEY_BATCH = 1000;

/** What one sweep did. */
export interface SweepReport {
  /** Open sagas due for a look, claimed by this sweeper (no other sweeper looks at them now). */
  readonly examined: number;
  /** Of those, the ones with no event for `staleMs`, resumed here. */
  readonly resumed: number;
  readonly completed: number;
  readonly failed: number;
  /** Still waiting on the venue (swap outcome unknown); looked at again after `staleMs`. */
  readonly suspended: number;
  readonly errors: number;
}

/** How resuming one saga ended, as counted in the report. */
type Outcome = 'completed' | 'failed' | 'suspended' | 'errors';

/**
 * The sweeper: no saga waits forever. It resumes sagas that stopped making progress, whatever
 * stopped them: a message dead-lettered after too many failures, an outbox row never delivered, a
 * process killed between two steps while its message is parked somewhere. Resuming is safe because
 * the runner is: it rebuilds the saga from its events and runs only the pending step (the swap by
 * its idempotency key), and past the deadline it compensates rather than starting a swap.
 *
 * Candidates come from the open sagas ({@link OpenSagas}). Each sweep claims the ones not looked
 * at for `staleMs`, so several sweeper processes share the work and each saga is looked at once per
 * `staleMs`. A saga is resumed only if its order stream's last event is older than `staleMs` too.
 */
export function createSweeper(options: SweeperOptions) {
  const { openSagas, runner, logger } = options;
  const staleMs = options.staleMs ?? 60_000;
  const intervalMs = options.intervalMs ?? 5_000;
  const batchSize = options.batchSize ?? 64;
  const limit = pLimit(options.concurrency ?? 8);

  async function resume(orderId: string, resumes: number): Promise<Outcome> {
    try {
      const result = await runner.run(orderId);
      const level = result.status === 'suspended' ? 'warn' : 'info';
      logger[level]({ orderId, resumes, outcome: result.status }, 'sweeper resumed a stalled saga');
      return result.status === 'not_found' ? 'errors' : result.status;
    } catch (error) {
      logger.error({ err: error, orderId, resumes }, 'sweeper could not resume a stalled saga');
      return 'errors';
    }
  }

  /** One sweep: claims the open sagas due for a look and resumes the stalled ones. */
  async function sweepOnce(): Promise<SweepReport> {
    const claimed = await openSagas.claimDue(staleMs, batchSize);
    // A saga this process is driving right now is progressing, whatever its events say.
    const stalled = claimed.filter((row) => row.stalled && !runner.isRunning(row.order_id));
    const outcomes = await Promise.all(stalled.map((row) => limit(() => resume(row.order_id, row.resumes))));
    const tally = (key: Outcome) => outcomes.filter((outcome) => outcome === key).length;
    return {
      examined: claimed.length,
      resumed: stalled.length,
      completed: tally('completed'),
      failed: tally('failed'),
      suspended: tally('suspended'),
      errors: tally('errors'),
    };
  }

  let timer: ReturnType<typeof setTimeout> | undefined;
  let sweeping: Promise<void> | undefined;
  let stopped = true;

  async function loop(): Promise<void> {
    try {
      // A full batch means more are due: go on at once rather than a whole interval later.
      while (!stopped && (await sweepOnce()).examined === batchSize);
    } catch (error) {
      logger.error({ err: error }, 'sweep failed; trying again after the interval');
    }
    try {
      const { reconciler } = options;
      while (!stopped && reconciler && (await reconciler.reconcileOnce()).more);
    } catch (error) {
      logger.error({ err: error }, 'reconciling failed swaps failed; trying again after the interval');
    }
    try {
      const { idempotencyKeys } = options;
      const now = options.now ?? (() => new Date());
      while (
        !stopped &&
        idempotencyKeys &&
        (await idempotencyKeys.deleteExpired(now(), KEY_BATCH)) === KEY_BATCH
      );
    } catch (error) {
      logger.error(
        { err: error },
        'deleting expired Idempotency-Keys failed; trying again after the interval',
      );
    }
    try {
      if (!stopped) await options.alerts?.evaluateOnce();
    } catch (error) {
      logger.error({ err: error }, 'evaluating alerts failed; trying again after the interval');
    }
    if (!stopped) {
      timer = setTimeout(() => {
        sweeping = loop();
      }, intervalMs);
    }
  }

  return {
    sweepOnce,
    start() {
      if (!stopped) return;
      stopped = false;
      sweeping = loop();
    },
    /** Stops sweeping and waits for the sagas being resumed to finish or suspend. */
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await sweeping;
    },
  };
}

export type Sweeper = ReturnType<typeof createSweeper>;
