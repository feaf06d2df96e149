import { positionIdFor } from '../domain/ids.ts';
import { NotFoundError } from '../domain/errors.ts';
import { machineFor, sagaVersionOf } from '../machines/registry.ts';
import type { EventEnvelope } from './envelopes.ts';
import type { EventStore, StoredEvent } from './ports/eventStore.ts';
import type { SagaCursor, SagaRow, SagaRowQuery, SagaRows } from './ports/sagaAdmin.ts';
import type { OrderViewStatus } from './projections.ts';
import type { SagaRunner } from './sagaRunner.ts';
import { replaySaga } from './sagaRunner.ts';

/** A saga as the admin list shows it (the admin HTTP contract's SagaSummary). */
export interface SagaSummary {
  readonly order_id: string;
  readonly user_id: string;
  readonly status: OrderViewStatus;
  /** The machine state it is in, by its leaf name (`awaitingOutcome`, `completed`). */
  readonly state: string;
  /** The step it waits to run; null once it has ended. */
  readonly pending_step: string | null;
  readonly machine_version: number;
  readonly created_at: string;
  readonly updated_at: string;
  readonly age_ms: number;
  readonly stuck: boolean;
  readonly failure_reason: string | null;
}

export interface SagaHistoryEntry {
  readonly stream: 'order' | 'position';
  readonly version: number;
  readonly event_type: string;
  readonly occurred_at: string;
  readonly payload: unknown;
}

export interface SagaDetail extends SagaSummary {
  /** After this the saga sends no swap and compensates (acceptance + deadline); null once ended. */
  readonly deadline: string | null;
  readonly history: readonly SagaHistoryEntry[];
}

export interface SagaListRequest {
  readonly stuck?: boolean | undefined;
  readonly status?: OrderViewStatus | undefined;
  readonly userId?: string | undefined;
  readonly limit: number;
  readonly cursor?: SagaCursor | undefined;
}

export interface RetryOutcome {
  readonly order_id: string;
  readonly outcome: 'completed' | 'failed' | 'suspended';
  readonly detail?: string;
}

export interface CancelOutcome {
  readonly order_id: string;
  readonly outcome: 'cancelled' | 'completed';
  readonly detail: string;
}

/** The saga had already ended (or ended meanwhile, by another worker): nothing to retry or cancel. */
export class SagaFinishedError extends Error {
  constructor(orderId: string, status: string) {
    super(`The saga of order ${orderId} has already ended (${status}): there is nothing to do`);
    this.name = 'SagaFinishedError';
  }
}

/**
 * The swap may have been sent and the venue could not be reached to void it: cancelling now would
 * be a guess, so nothing was changed.
 */
export class SwapOutcomeUnknownError extends Error {
  constructor(detail: string) {
    super(`${detail}; nothing was changed: try again once the venue answers`);
    this.name = 'SwapOutcomeUnknownError';
  }
}

export interface SagaAdminDeps {
  readonly rows: SagaRows;
  readonly store: EventStore;
  /** The runner the sweeper uses (retry and cancel run in the process that serves the request). */
  readonly runner: SagaRunner;
  /** The saga deadline (acceptance + this), as the runner's settings have it. */
  readonly deadlineMs: number;
  /** An open saga with no event for longer than this is stuck (STUCK_AFTER_MS). */
  readonly stuckAfterMs: number;
}

/** The leaf of a (possibly nested) state value: `{ executingSwap: 'awaitingOutcome' }` → awaitingOutcome. */
function leafOf(value: unknown): string {
  if (typeof value === 'string') return value;
  const [entry] = Object.values(value as Record<string, unknown>);
  return entry === undefined ? String(value) : leafOf(entry);
}

function summarize(row: SagaRow, events: readonly EventEnvelope[]) {
  const version = sagaVersionOf(events[0]?.metadata);
  const { snapshot, pending } = replaySaga(events, machineFor(version));
  const summary: SagaSummary = {
    order_id: row.order_id,
    user_id: row.user_id,
    status: row.status,
    state: leafOf(snapshot.value),
    pending_step: pending,
    machine_version: version,
    created_at: row.created_at,
    updated_at: row.updated_at,
    age_ms: row.age_ms,
    stuck: row.stuck,
    failure_reason: row.failure_reason,
  };
  return { summary, done: snapshot.status === 'done' };
}

/** What the terminal event of the order says, for an answer's detail. */
function failureDetail(events: readonly StoredEvent[]): string {
  const failed = events.findLast((e) => e.event_type === 'OrderFailed');
  if (failed?.event_type !== 'OrderFailed') return 'the order failed';
  const { reason, detail } = failed.event_data;
  return detail ? `the order failed (${reason}): ${detail}` : `the order failed (${reason})`;
}

function completionDetail(events: readonly StoredEvent[]): string {
  const executed = events.findLast((e) => e.event_type === 'SwapExecuted');
  return executed?.event_type === 'SwapExecuted'
    ? `the venue had executed the swap (tx ${executed.event_data.tx_hash}): the order completed`
    : 'the order completed';
}

/**
 * The operator's view of sagas and the two repairs: list and show (the read model and open_sagas
 * for what SQL answers well, each saga's events replayed for its state and pending step), retry
 * (the pending step now, as the sweeper would) and cancel (as if the deadline had passed now:
 * never a blind compensation once the swap may have been sent).
 */
export function createSagaAdmin(deps: SagaAdminDeps) {
  const { rows, store, runner } = deps;

  async function eventsOf(orderIds: readonly string[]): Promise<Map<string, StoredEvent[]>> {
    const byStream = new Map<string, string>();
    for (const id of orderIds) {
      byStream.set(id, id);
      byStream.set(positionIdFor(id), id);
    }
    const grouped = new Map<string, StoredEvent[]>(orderIds.map((id) => [id, []]));
    if (orderIds.length === 0) return grouped;
    // One query for the page: every order's and position's events, in the order they were stored.
    for (const event of await store.loadStreams([...byStream.keys()])) {
      const order = byStream.get(event.aggregate_id);
      if (order) grouped.get(order)?.push(event);
    }
    return grouped;
  }

  async function load(orderId: string) {
    const row = await rows.one(orderId, deps.stuckAfterMs);
    const events = row ? ((await eventsOf([orderId])).get(orderId) ?? []) : [];
    if (!row || events[0]?.event_type !== 'OrderAccepted')
      throw new NotFoundError(`There is no order with id ${orderId}`);
    return { row, events };
  }

  return {
    /** A page of sagas, most recently updated first, and where the next page starts. */
    async list(request: SagaListRequest): Promise<{ sagas: SagaSummary[]; next: SagaCursor | null }> {
      const query: SagaRowQuery = {
        stuck: request.stuck,
        status: request.status,
        userId: request.userId,
        // One more than asked: whether it comes back says whether there is a next page.
        limit: request.limit + 1,
        after: request.cursor,
        stuckAfterMs: deps.stuckAfterMs,
      };
      const found = await rows.list(query);
      const shown = found.slice(0, request.limit);
      const events = await eventsOf(shown.map((r) => r.order_id));
      const sagas = shown
        .filter((row) => events.get(row.order_id)?.[0]?.event_type === 'OrderAccepted')
        .map((row) => summarize(row, events.get(row.order_id) ?? []).summary);
      const last = shown.at(-1);
      return {
        sagas,
        next:
          found.length > request.limit && last
            ? { updated_at: last.updated_at, order_id: last.order_id }
            : null,
      };
    },

    /** @throws NotFoundError */
    async show(orderId: string): Promise<SagaDetail> {
      const { row, events } = await load(orderId);
      const { summary, done } = summarize(row, events);
      const accepted = events[0]?.event_type === 'OrderAccepted' ? events[0].event_data.accepted_at : null;
      return {
        ...summary,
        deadline:
          done || accepted === null ? null : new Date(Date.parse(accepted) + deps.deadlineMs).toISOString(),
        history: events.map((e) => ({
          stream: e.aggregate_type,
          version: e.version,
          event_type: e.event_type,
          occurred_at: e.metadata.occurred_at ?? e.created_at,
          payload: e.event_data,
        })),
      };
    },

    /**
     * Runs the saga's pending step now, through the runner (as the sweeper would: the swap only
     * under its key, and past the deadline a compensation or a void).
     * @throws NotFoundError, SagaFinishedError
     */
    async retry(orderId: string): Promise<RetryOutcome> {
      const result = await runner.run(orderId);
      switch (result.status) {
        case 'not_found':
          throw new NotFoundError(`There is no order with id ${orderId}`);
        case 'suspended':
          return { order_id: orderId, outcome: 'suspended', detail: result.detail };
        case 'completed':
        case 'failed': {
          if (!result.finishedHere) throw new SagaFinishedError(orderId, result.status);
          if (result.status === 'completed') return { order_id: orderId, outcome: 'completed' };
          const events = await store.loadStreams([orderId]);
          return { order_id: orderId, outcome: 'failed', detail: failureDetail(events) };
        }
      }
    },

    /**
     * Cancels the saga as if its deadline had passed now, with reason `cancelled`: before the swap
     * is sent it compensates; once it may have been sent, the venue is asked to void it first —
     * voided: compensated (cancelled); executed: the order completes; the venue unreachable:
     * SwapOutcomeUnknownError and nothing is stored. A worker driving the saga at the same time
     * loses (or wins) on the stream's version, and the runner reloads: no double compensation.
     * @throws NotFoundError, SagaFinishedError, SwapOutcomeUnknownError
     */
    async cancel(orderId: string, reason: string): Promise<CancelOutcome> {
      const result = await runner.run(orderId, { cancel: { detail: `cancelled by an operator: ${reason}` } });
      switch (result.status) {
        case 'not_found':
          throw new NotFoundError(`There is no order with id ${orderId}`);
        case 'suspended':
          throw new SwapOutcomeUnknownError(result.detail);
        case 'completed':
        case 'failed': {
          if (!result.finishedHere) throw new SagaFinishedError(orderId, result.status);
          const events = await store.loadStreams([orderId]);
          return result.status === 'completed'
            ? { order_id: orderId, outcome: 'completed', detail: completionDetail(events) }
            : { order_id: orderId, outcome: 'cancelled', detail: failureDetail(events) };
        }
      }
    },
  };
}

export type SagaAdmin = ReturnType<typeof createSagaAdmin>;
