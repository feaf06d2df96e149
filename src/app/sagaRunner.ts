import { createActor, initialTransition, transition } from 'xstate';
import type { Actor, InspectionEvent, SnapshotFrom } from 'xstate';
import type { OrderEvent, PositionEvent, SwapExecuted } from '../domain/events.ts';
import { idempotencyKeyFor, positionIdFor } from '../domain/ids.ts';
import { IO_STEPS, SAGA, stepsIn } from '../machines/orderSaga.ts';
import { machineFor, sagaVersionOf } from '../machines/registry.ts';
import type { OrderSagaMachine, SagaCommand, SagaEvent } from '../machines/orderSaga.ts';
import { decideAndAppend } from './decideAndAppend.ts';
import { failpoint } from './failpoints.ts';
import { ConcurrencyError } from './ports/eventStore.ts';
import type { EventStore, NewEvent, ProcessedRecord, StoredEvent, StreamAppend } from './ports/eventStore.ts';
import type { Logger } from './ports/logger.ts';
import { NO_METRICS } from './ports/metrics.ts';
import type { Metrics } from './ports/metrics.ts';
import { domainEvent } from './envelopes.ts';
import type { EnvelopeOf, EventEnvelope } from './envelopes.ts';
import { toNewEvents } from './orders.ts';
import { decideStep, pastDeadline, runStep } from './sagaSteps.ts';
import type { StepDeps, StepOutcome } from './sagaSteps.ts';
import { alertExecutedSwapOfFailedOrder } from './swapAudit.ts';
import { inSpan, recordStep, traceParent } from './tracing.ts';
import type { StepSpan } from './tracing.ts';
import type { LogContext } from './ports/logger.ts';
import type { SwapAudit } from './swapAudit.ts';

export type SagaSnapshot = SnapshotFrom<OrderSagaMachine>;

/** How a run ended. `suspended`: waiting on something outside (the venue); resume later. */
export type SagaRunResult =
  | {
      readonly status: 'completed' | 'failed';
      readonly orderId: string;
      /** This run stored the terminal events, with the `processed` record when one was given. */
      readonly finishedHere?: true;
    }
  | { readonly status: 'suspended'; readonly orderId: string; readonly detail: string }
  | { readonly status: 'not_found'; readonly orderId: string };

export interface SagaRunnerDeps extends StepDeps {
  readonly store: EventStore;
  readonly newId: () => string;
  readonly logger: Logger;
  /** Where a swap executed for an order stored as failed is recorded (besides the error log). */
  readonly audit?: SwapAudit;
  /** Receives every saga actor's inspection events (e.g. the Stately inspector). */
  readonly inspect?: (event: InspectionEvent) => void;
  /** Step durations, and the orders this process ended (none when unset). */
  readonly metrics?: Metrics;
  /** Puts `order_id` on every line logged while an order's saga runs (src/infra/logger.ts). */
  readonly logContext?: LogContext;
  /** Test hook: called before each command runs. */
  readonly beforeCommand?: (orderId: string, command: SagaCommand) => void | Promise<void>;
  /** Test hook: called for each command of a batch after it ran, before the batch's events are stored. */
  readonly beforeAppend?: (orderId: string, command: SagaCommand) => void | Promise<void>;
  /** Test hook: called for each command of a batch after its events are stored, before the actor moves. */
  readonly afterAppend?: (orderId: string, command: SagaCommand) => void | Promise<void>;
}

interface RunOptions {
  readonly processed?: ProcessedRecord;
  /**
   * The order's OrderAccepted as delivered: the saga is first assumed to be just accepted, which
   * saves loading its streams. If it has moved on, the first append meets a version conflict and
   * the saga is reloaded, so a wrong assumption costs a retry, never a mistake (the first step of
   * a new saga only asks for a price). Pass it only for a first delivery: a redelivered message
   * most likely belongs to a saga that moved on, and would ask the price service for nothing.
   */
  readonly accepted?: EnvelopeOf<'OrderAccepted'>;
  /**
   * An operator cancels the saga: this run treats its deadline as passed now (see
   * `StepDeps.cancel`), so it compensates with reason `cancelled` where the deadline would, and
   * voids a swap of unknown outcome first (voided: cancelled; executed: the order completes; the
   * venue unreachable: suspended, nothing stored).
   */
  readonly cancel?: { readonly detail: string };
}

const toSagaEvent = (event: EventEnvelope): SagaEvent => domainEvent(event);

/**
 * Folds stored events through the machine's pure `transition()`: the snapshot the saga is in,
 * and the step its current state asks for. Nothing runs; the last entry action names the
 * pending step. `machine` is the one of the version the saga started on (`machineFor`).
 */
export function replaySaga(
  events: readonly EventEnvelope[],
  machine: OrderSagaMachine,
): {
  snapshot: SagaSnapshot;
  pending: SagaCommand | null;
} {
  let [snapshot] = initialTransition(machine);
  let pending: SagaCommand | null = null;
  for (const event of events) {
    const [next, actions] = transition(machine, snapshot, toSagaEvent(event));
    // Every active state names its step on entry; events that keep the state emit none.
    pending = stepsIn(actions).at(-1) ?? pending;
    snapshot = next;
  }
  return { snapshot, pending: snapshot.status === 'done' ? null : pending };
}

/** A version conflict on append; `executed` is the venue's execution the losing batch held, if any. */
class Conflict extends Error {
  readonly executed: SwapExecuted['data'] | undefined;
  constructor(message: string, executed?: SwapExecuted['data']) {
    super(message);
    this.executed = executed;
  }
}

interface Decided {
  readonly stream: 'order' | 'position';
  readonly event: OrderEvent | PositionEvent;
}

/** What came of one step: its outcome, or the deadline, which keeps it from running at all. */
export type StepResult =
  StepOutcome | { readonly kind: 'deadline'; readonly detail: string; readonly reason?: 'cancelled' };

/** One batch of steps, planned: what to store, what to tell the machine, and what comes next. */
export interface BatchPlan {
  /** The steps the batch ran, in order. */
  readonly steps: readonly SagaCommand[];
  /** Events to store, in the order they were decided. */
  readonly decided: readonly Decided[];
  /** Every event for the machine, in order: the decided ones and the step failures. */
  readonly sends: readonly SagaEvent[];
  /** The saga as it will be once the batch is stored. */
  readonly preview: SagaSnapshot;
  /** The next step, one that calls the outside world; null when the saga ends with this batch. */
  readonly next: SagaCommand | null;
  /** The first step could not decide (the swap's outcome unknown): nothing to store. */
  readonly suspended?: string;
}

function eventsOf(result: StepResult): SagaEvent[] {
  switch (result.kind) {
    case 'deadline':
      return [
        {
          type: 'DeadlinePassed',
          detail: result.detail,
          ...(result.reason ? { reason: result.reason } : {}),
        },
      ];
    case 'failed':
      return [{ type: 'StepFailed', reason: result.reason, detail: result.detail }];
    case 'append':
      return [...result.position, ...result.order];
    case 'suspended':
      return [];
  }
}

/**
 * Plans a batch, purely: the first step's result (it may have called the outside world), then
 * every following step that needs no I/O, each decided by `decide` from the previewed context.
 * Every event goes through the machine's pure `transition()`; nothing is stored and no actor
 * moves. The batch ends before the next step that calls the outside world, or at the end.
 */
export function planBatch(
  machine: OrderSagaMachine,
  snapshot: SagaSnapshot,
  first: { readonly step: SagaCommand; readonly result: StepResult },
  decide: (step: SagaCommand, context: SagaSnapshot['context']) => StepResult,
): BatchPlan {
  if (first.result.kind === 'suspended') {
    return {
      steps: [first.step],
      decided: [],
      sends: [],
      preview: snapshot,
      next: first.step,
      suspended: first.result.detail,
    };
  }
  const steps: SagaCommand[] = [];
  const decided: Decided[] = [];
  const sends: SagaEvent[] = [];
  let preview = snapshot;
  let step: SagaCommand = first.step;
  let result: StepResult = first.result;
  for (;;) {
    steps.push(step);
    if (result.kind === 'suspended') throw new Error(`Step ${step} needs no I/O, yet could not decide`);
    if (result.kind === 'append') {
      decided.push(...result.position.map((event) => ({ stream: 'position' as const, event })));
      decided.push(...result.order.map((event) => ({ stream: 'order' as const, event })));
    }
    let upcoming: SagaCommand | null = null;
    for (const event of eventsOf(result)) {
      const [after, actions] = transition(machine, preview, event);
      preview = after;
      upcoming = stepsIn(actions).at(-1) ?? upcoming;
      sends.push(event);
    }
    const next = preview.status === 'done' ? null : upcoming;
    if (next === null || IO_STEPS.has(next)) return { steps, decided, sends, preview, next };
    step = next;
    result = decide(step, preview.context);
  }
}

/** A step's outcome as span attributes: what it came to, and why when it failed. */
function outcomeOf(result: StepResult): Record<string, string> {
  if (result.kind === 'failed') return { 'saga.step.outcome': 'failed', 'saga.step.reason': result.reason };
  if (result.kind === 'deadline') return { 'saga.step.outcome': 'deadline', 'saga.step.reason': 'deadline' };
  return { 'saga.step.outcome': result.kind === 'append' ? 'done' : 'suspended' };
}

function markOutcome(span: StepSpan, result: StepResult): void {
  span.setAttributes(outcomeOf(result));
}

/**
 * Drives order sagas: rebuilds each from its stored events, runs the pending step through the
 * ports, stores the step's events (with outbox rows) at the expected versions, and only then
 * advances the live actor — until a terminal state. A crash anywhere leaves events from which a
 * new runner resumes; a runner that loses a race on a version reloads and carries on from what
 * the winner stored.
 */
export function createSagaRunner(deps: SagaRunnerDeps) {
  const active = new Map<string, Actor<OrderSagaMachine>>();
  const metrics = deps.metrics ?? NO_METRICS;

  /** Runs a step that calls the outside world, timed by step and outcome. */
  async function timedStep(
    step: SagaCommand,
    context: SagaSnapshot['context'],
    stepDeps: StepDeps,
    resume: boolean,
  ) {
    const started = performance.now();
    const took = (outcome: string) => metrics.sagaStep(step, outcome, performance.now() - started);
    try {
      const outcome = await runStep(step, context, stepDeps, resume);
      took(outcome.kind === 'append' ? 'ok' : outcome.kind);
      return outcome;
    } catch (error) {
      took('error');
      throw error;
    }
  }

  /** Counts and logs (one info line each) the orders whose terminal event this process stored. */
  function countEnded(stored: readonly StoredEvent[]): void {
    for (const record of stored) {
      if (record.event_type === 'OrderCompleted') {
        metrics.orderCompleted();
        deps.logger.info({ order_id: record.aggregate_id }, 'order completed');
      } else if (record.event_type === 'OrderFailed') {
        const { reason, failed_step, detail } = record.event_data;
        metrics.orderFailed(reason);
        deps.logger.info({ order_id: record.aggregate_id, reason, failed_step, detail }, 'order failed');
      }
    }
  }

  /** The deadline keeps a step from running when its declaration says so (see SAGA). */
  function deadlineFor(
    step: SagaCommand,
    context: SagaSnapshot['context'],
    stepDeps: StepDeps,
  ): StepResult | undefined {
    if (SAGA[step].deadline !== 'compensate' || !pastDeadline(context.order, stepDeps)) return undefined;
    if (stepDeps.cancel) return { kind: 'deadline', detail: stepDeps.cancel.detail, reason: 'cancelled' };
    return { kind: 'deadline', detail: `not done within ${deps.settings.deadlineMs} ms of acceptance` };
  }

  /** Commits a planned batch: its events at the expected versions, in the order they were decided. */
  async function commitBatch(
    orderId: string,
    plan: BatchPlan,
    versions: { order: number; position: number },
    causedBy: string | null,
    processed: ProcessedRecord | undefined,
  ): Promise<StoredEvent[]> {
    if (plan.decided.length === 0) return [];
    const now = deps.now().toISOString();
    let causationId = causedBy;
    const events = plan.decided.map(({ stream, event }) => {
      const [newEvent] = toNewEvents([event], {
        correlationId: orderId,
        causationId,
        now,
        newId: deps.newId,
      });
      causationId = newEvent?.event_id ?? causationId;
      return { stream, newEvent: newEvent as NewEvent };
    });
    const of = (stream: 'order' | 'position') =>
      events.filter((e) => e.stream === stream).map((e) => e.newEvent);
    const streams: StreamAppend[] = [];
    if (of('position').length > 0) {
      streams.push({
        aggregate_id: positionIdFor(orderId),
        aggregate_type: 'position',
        expected_version: versions.position,
        events: of('position'),
      });
    }
    // The order stream is always part of the append, if only as a condition: nothing is stored
    // for a saga whose order moved on meanwhile (e.g. another worker compensated it).
    streams.push({
      aggregate_id: orderId,
      aggregate_type: 'order',
      expected_version: versions.order,
      events: of('order'),
    });
    const executed = plan.decided.find(
      (d): d is { stream: 'order'; event: SwapExecuted } => d.event.type === 'SwapExecuted',
    )?.event.data;
    // The terminal batch carries the consumer's inbox record: effects and record commit together.
    const inbox = plan.next === null ? processed : undefined;
    try {
      const result = await deps.store.append(streams, {
        sequence: events.map((e) => e.newEvent.event_id),
        ...(inbox ? { processed: inbox } : {}),
      });
      if (result.status !== 'appended')
        throw new Conflict(`events already stored: ${result.event_ids.join(', ')}`, executed);
      return [...result.events];
    } catch (error) {
      if (error instanceof ConcurrencyError) throw new Conflict(error.message, executed);
      throw error;
    }
  }

  function alertAnomalies(orderId: string, stored: readonly StoredEvent[]): void {
    for (const record of stored) {
      if (record.event_type !== 'SwapExecuted') continue;
      const anomalies = record.event_data.venue_anomalies;
      if (!anomalies?.length) continue;
      deps.logger.error(
        { alert: 'venue_anomaly', orderId, txHash: record.event_data.tx_hash, anomalies },
        'the venue executed a swap outside its terms; recorded as done and flagged',
      );
    }
  }

  async function drive(
    orderId: string,
    loaded: readonly EventEnvelope[],
    processed: ProcessedRecord | undefined,
    cancel: RunOptions['cancel'],
  ): Promise<SagaRunResult> {
    const stepDeps: SagaRunnerDeps = cancel ? { ...deps, cancel } : deps;
    // The saga runs to its end on the machine version it started on.
    const machine = machineFor(sagaVersionOf(loaded[0]?.metadata));
    const { snapshot, pending } = replaySaga(loaded, machine);
    if (snapshot.status === 'done')
      return { status: snapshot.value === 'completed' ? 'completed' : 'failed', orderId };

    const versions = { order: 0, position: 0 };
    for (const e of loaded) versions[e.aggregate_id === orderId ? 'order' : 'position'] += 1;
    let causationId = loaded.at(-1)?.event_id ?? null;
    let resume = true;

    // The live actor is for inspection only (the Stately inspector, GET …/saga in process): it is
    // moved by the stored events, never asked what to do.
    const actor = createActor(machine, { snapshot, ...(deps.inspect ? { inspect: deps.inspect } : {}) });
    active.set(orderId, actor);
    actor.start();
    // A run of its own (the sweeper's, a restart's) continues the order's trace from its events.
    const parent = traceParent(loaded.at(-1)?.metadata);
    try {
      let next: SagaCommand | null = pending;
      while (next) {
        const step: SagaCommand = next;
        const batch = await inSpan(
          `saga ${step}`,
          { parent, attributes: { 'saga.step': step, 'order.id': orderId } },
          (span) => runBatch(step, span),
        );
        if ('suspended' in batch) return batch.suspended;
        next = batch.next;
      }
      const final = actor.getSnapshot();
      if (final.status !== 'done')
        throw new Error(`Saga ${orderId} stopped in ${JSON.stringify(final.value)} with no step`);
      return { status: final.value === 'completed' ? 'completed' : 'failed', orderId, finishedHere: true };
    } finally {
      actor.stop();
      active.delete(orderId);
    }

    /**
     * One batch, in the span of its first step (the one that calls the outside world): its
     * events are stored with that span's trace context. The pure steps that follow it get a span
     * each, within it.
     */
    async function runBatch(
      step: SagaCommand,
      span: StepSpan,
    ): Promise<{ next: SagaCommand | null } | { suspended: SagaRunResult }> {
      const context = actor.getSnapshot().context;
      await deps.beforeCommand?.(orderId, step);
      const result =
        deadlineFor(step, context, stepDeps) ?? (await timedStep(step, context, stepDeps, resume));
      resume = false;
      markOutcome(span, result);
      const plan = planBatch(machine, actor.getSnapshot(), { step, result }, (following, previewed) => {
        void deps.beforeCommand?.(orderId, following);
        const decided =
          deadlineFor(following, previewed, stepDeps) ?? decideStep(following, previewed, stepDeps);
        recordStep(`saga ${following}`, {
          'saga.step': following,
          'order.id': orderId,
          ...outcomeOf(decided),
        });
        return decided;
      });
      if (plan.suspended !== undefined) {
        deps.logger.warn({ orderId, step, detail: plan.suspended }, 'saga suspended');
        return { suspended: { status: 'suspended', orderId, detail: plan.suspended } };
      }
      for (const s of plan.steps) await deps.beforeAppend?.(orderId, s);
      const stored = await commitBatch(orderId, plan, versions, causationId, processed);
      if (stored.length > 0) failpoint('saga.after-append');
      for (const s of plan.steps) await deps.afterAppend?.(orderId, s);
      alertAnomalies(orderId, stored);
      countEnded(stored);
      let storedIndex = 0;
      for (const event of plan.sends) {
        if (event.type === 'StepFailed' || event.type === 'DeadlinePassed') {
          actor.send(event);
          continue;
        }
        const record = stored[storedIndex++];
        if (!record) throw new Error(`Saga ${orderId}: ${event.type} was decided but not stored`);
        versions[record.aggregate_id === orderId ? 'order' : 'position'] = record.version;
        causationId = record.event_id;
        actor.send(toSagaEvent(record));
      }
      return { next: plan.next };
    }
  }

  /**
   * This worker held the venue's execution of the swap, but another worker had failed the order
   * meanwhile: money moved for an order recorded as failed. Alerted and recorded for an operator;
   * the order stays failed (nothing may follow its terminal event).
   */
  async function executedButFailed(orderId: string, executed: SwapExecuted['data']): Promise<void> {
    const finding = {
      order_id: orderId,
      idempotency_key: idempotencyKeyFor(orderId),
      outcome: 'executed',
      tx_hash: executed.tx_hash,
      found_by: 'saga',
    } as const;
    alertExecutedSwapOfFailedOrder(deps.logger, finding);
    await deps.audit?.record(finding);
  }

  async function runAlone(
    orderId: string,
    options: RunOptions,
    assumeAccepted: boolean,
  ): Promise<SagaRunResult> {
    const accepted =
      assumeAccepted && options.accepted?.event_type === 'OrderAccepted' && options.accepted.version === 1
        ? options.accepted
        : undefined;
    let held: SwapExecuted['data'] | undefined;
    return decideAndAppend({
      load: (attempt): readonly EventEnvelope[] | Promise<readonly EventEnvelope[]> =>
        attempt === 1 && accepted ? [accepted] : deps.store.loadStreams([orderId, positionIdFor(orderId)]),
      async decide(loaded): Promise<SagaRunResult> {
        if (loaded[0]?.event_type !== 'OrderAccepted') return { status: 'not_found', orderId };
        const result = await drive(orderId, loaded, options.processed, options.cancel);
        if (held && result.status === 'failed') await executedButFailed(orderId, held);
        return result;
      },
      isConflict: (error) => error instanceof Conflict,
      onConflict(error, attempt) {
        held = (error as Conflict).executed ?? held;
        deps.logger.debug(
          { orderId, attempt, reason: (error as Error).message },
          'saga raced another worker; reloading',
        );
      },
    });
  }

  /** Runs in progress in this process, by order: a second run of an order waits for the first. */
  const running = new Map<string, Promise<SagaRunResult>>();

  return {
    /**
     * Runs an order's saga until it ends or must wait. Safe to call for any order at any time, as
     * often as wanted, from any number of processes: a finished saga is left as it is. Within a
     * process, runs of one order take turns (a redelivery racing the sweeper waits, then finds the
     * work done) rather than race each other through the database.
     */
    run(orderId: string, options: RunOptions = {}): Promise<SagaRunResult> {
      return deps.logContext
        ? deps.logContext({ order_id: orderId }, () => run(orderId, options))
        : run(orderId, options);
    },

    /** True while a run of the order is in progress (or waiting its turn) in this process. */
    isRunning: (orderId: string): boolean => running.has(orderId),

    /** The live actor of a saga being driven in this process, for inspection. */
    actor: (orderId: string): Actor<OrderSagaMachine> | undefined => active.get(orderId),
    get activeCount(): number {
      return active.size;
    },
  };

  async function run(orderId: string, options: RunOptions): Promise<SagaRunResult> {
    const before = running.get(orderId);
    const mine = before
      ? before.catch(() => undefined).then(() => runAlone(orderId, options, false))
      : runAlone(orderId, options, true);
    running.set(orderId, mine);
    try {
      return await mine;
    } finally {
      if (running.get(orderId) === mine) running.delete(orderId);
    }
  }
}

export type SagaRunner = ReturnType<typeof createSagaRunner>;
