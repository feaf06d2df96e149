import { createActor, initialTransition, transition } from 'xstate';
import type { Actor, InspectionEvent, SnapshotFrom } from 'xstate';
import type { OrderEvent, PositionEvent, SwapExecuted } from '../domain/events.ts';
import { idempotencyKeyFor, positionIdFor } from '../domain/ids.ts';
import { orderSaga } from '../machines/orderSaga.ts';
import type { OrderSagaMachine, SagaCommand, SagaEvent } from '../machines/orderSaga.ts';
import { ConcurrencyError } from './ports/eventStore.ts';
import type { EventStore, NewEvent, ProcessedRecord, StoredEvent, StreamAppend } from './ports/eventStore.ts';
import type { Logger } from './ports/logger.ts';
import { domainEvent } from './envelopes.ts';
import type { EnvelopeOf, EventEnvelope } from './envelopes.ts';
import { toNewEvents } from './orders.ts';
import { runCommand } from './sagaSteps.ts';
import type { StepDeps, StepOutcome } from './sagaSteps.ts';
import { alertExecutedSwapOfFailedOrder } from './swapAudit.ts';
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
}

/** The venue anomalies a stored SwapExecuted carries, if any. */
function flagged(record: StoredEvent): readonly string[] | undefined {
  const anomalies = (record.event_data as SwapExecuted['data']).venue_anomalies;
  return anomalies && anomalies.length > 0 ? anomalies : undefined;
}

const toSagaEvent = (event: EventEnvelope): SagaEvent => domainEvent(event);

const commandsIn = (actions: readonly { type: string; params?: unknown }[]): SagaCommand[] =>
  actions.flatMap((action) =>
    action.type === 'runStep' ? [(action.params as { command: SagaCommand }).command] : [],
  );

/**
 * Folds stored events through the machine's pure `transition()`: the snapshot the saga is in,
 * and the command its current state asks for. Nothing runs; the last entry action names the
 * pending step.
 */
export function replaySaga(events: readonly EventEnvelope[]): {
  snapshot: SagaSnapshot;
  pending: SagaCommand | null;
} {
  let [snapshot] = initialTransition(orderSaga);
  let pending: SagaCommand | null = null;
  for (const event of events) {
    const [next, actions] = transition(orderSaga, snapshot, toSagaEvent(event));
    // Every active state names its command on entry; events that keep the state emit none.
    pending = commandsIn(actions).at(-1) ?? pending;
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

/** Commands that call the outside world; every other command is decided from the saga's state alone. */
const IO_COMMANDS: ReadonlySet<SagaCommand> = new Set(['QuotePrice', 'ExecuteSwap']);

interface Decided {
  readonly stream: 'order' | 'position';
  readonly event: OrderEvent | PositionEvent;
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

  /** Stores a batch's events at the expected versions, in the order they were decided. */
  async function persist(
    orderId: string,
    decided: readonly Decided[],
    versions: { order: number; position: number },
    causedBy: string | null,
    processed: ProcessedRecord | undefined,
  ): Promise<StoredEvent[]> {
    const now = deps.now().toISOString();
    let causationId = causedBy;
    const events = decided.map(({ stream, event }) => {
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
    const executed = decided.find(
      (d): d is { stream: 'order'; event: SwapExecuted } => d.event.type === 'SwapExecuted',
    )?.event.data;
    try {
      const result = await deps.store.append(streams, {
        sequence: events.map((e) => e.newEvent.event_id),
        ...(processed ? { processed } : {}),
      });
      if (result.status !== 'appended')
        throw new Conflict(`events already stored: ${result.event_ids.join(', ')}`, executed);
      return [...result.events];
    } catch (error) {
      if (error instanceof ConcurrencyError) throw new Conflict(error.message, executed);
      throw error;
    }
  }

  async function drive(
    orderId: string,
    loaded: readonly EventEnvelope[],
    processed: ProcessedRecord | undefined,
  ): Promise<SagaRunResult> {
    const { snapshot, pending } = replaySaga(loaded);
    if (snapshot.status === 'done')
      return { status: snapshot.value === 'completed' ? 'completed' : 'failed', orderId };

    const versions = { order: 0, position: 0 };
    for (const e of loaded) versions[e.aggregate_id === orderId ? 'order' : 'position'] += 1;
    let causationId = loaded.at(-1)?.event_id ?? null;

    const actor = createActor(orderSaga, { snapshot, ...(deps.inspect ? { inspect: deps.inspect } : {}) });
    active.set(orderId, actor);
    actor.start();
    try {
      let next: SagaCommand | null = pending;
      let resume = true;
      while (next) {
        // One batch: this command, then each following command that needs no I/O, previewed with
        // the pure transition(): nothing moves before the batch's events are stored.
        let preview = actor.getSnapshot();
        const decided: Decided[] = [];
        const sends: SagaEvent[] = [];
        const commands: SagaCommand[] = [];
        let command: SagaCommand | null = next;
        next = null;
        while (command) {
          await deps.beforeCommand?.(orderId, command);
          const outcome: StepOutcome = await runCommand(command, preview.context, deps, resume);
          resume = false;
          commands.push(command);
          if (outcome.kind === 'suspended') {
            // Only a command with I/O suspends, and those always start a batch: nothing is lost.
            deps.logger.warn({ orderId, command, detail: outcome.detail }, 'saga suspended');
            return { status: 'suspended', orderId, detail: outcome.detail };
          }
          const produced: SagaEvent[] =
            outcome.kind === 'failed'
              ? [
                  {
                    type: 'StepFailed',
                    reason: outcome.reason,
                    failed_step: outcome.failed_step,
                    detail: outcome.detail,
                  },
                ]
              : [...outcome.position, ...outcome.order];
          if (outcome.kind === 'append') {
            decided.push(...outcome.position.map((event) => ({ stream: 'position' as const, event })));
            decided.push(...outcome.order.map((event) => ({ stream: 'order' as const, event })));
          }
          let upcoming: SagaCommand | null = null;
          for (const event of produced) {
            const [after, actions] = transition(orderSaga, preview, event);
            preview = after;
            upcoming = commandsIn(actions).at(-1) ?? upcoming;
            sends.push(event);
          }
          command = preview.status === 'done' ? null : upcoming;
          if (command && IO_COMMANDS.has(command)) {
            next = command;
            command = null;
          }
        }

        for (const command of commands) await deps.beforeAppend?.(orderId, command);
        // The terminal batch carries the consumer's inbox record: effects and record commit together.
        const terminal = preview.status === 'done';
        const stored =
          decided.length > 0
            ? await persist(orderId, decided, versions, causationId, terminal ? processed : undefined)
            : [];
        for (const command of commands) await deps.afterAppend?.(orderId, command);
        for (const record of stored) {
          const anomalies = record.event_type === 'SwapExecuted' ? flagged(record) : undefined;
          if (anomalies) {
            deps.logger.error(
              {
                alert: 'venue_anomaly',
                orderId,
                txHash: (record.event_data as { tx_hash?: string }).tx_hash,
                anomalies,
              },
              'the venue executed a swap outside its terms; recorded as done and flagged',
            );
          }
        }
        let storedIndex = 0;
        for (const event of sends) {
          if (event.type === 'StepFailed') {
            actor.send(event);
            continue;
          }
          const record = stored[storedIndex++];
          if (!record) throw new Error(`Saga ${orderId}: ${event.type} was decided but not stored`);
          versions[record.aggregate_id === orderId ? 'order' : 'position'] = record.version;
          causationId = record.event_id;
          actor.send(toSagaEvent(record));
        }
      }
      const final = actor.getSnapshot();
      if (final.status !== 'done')
        throw new Error(`Saga ${orderId} stopped in ${JSON.stringify(final.value)} with no step`);
      return { status: final.value === 'completed' ? 'completed' : 'failed', orderId, finishedHere: true };
    } finally {
      actor.stop();
      active.delete(orderId);
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
    let assumed =
      assumeAccepted && options.accepted?.event_type === 'OrderAccepted' && options.accepted.version === 1;
    let held: SwapExecuted['data'] | undefined;
    for (let attempt = 1; ; attempt++) {
      const loaded =
        assumed && options.accepted
          ? [options.accepted]
          : await deps.store.loadStreams([orderId, positionIdFor(orderId)]);
      assumed = false;
      if (loaded[0]?.event_type !== 'OrderAccepted') return { status: 'not_found', orderId };
      try {
        const result = await drive(orderId, loaded, options.processed);
        if (held && result.status === 'failed') await executedButFailed(orderId, held);
        return result;
      } catch (error) {
        if (!(error instanceof Conflict) || attempt >= 20) throw error;
        held = error.executed ?? held;
        deps.logger.debug(
          { orderId, attempt, reason: error.message },
          'saga raced another worker; reloading',
        );
      }
    }
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
    async run(orderId: string, options: RunOptions = {}): Promise<SagaRunResult> {
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
    },

    /** True while a run of the order is in progress (or waiting its turn) in this process. */
    isRunning: (orderId: string): boolean => running.has(orderId),

    /** The live actor of a saga being driven in this process, for inspection. */
    actor: (orderId: string): Actor<OrderSagaMachine> | undefined => active.get(orderId),
    get activeCount(): number {
      return active.size;
    },
  };
}

export type SagaRunner = ReturnType<typeof createSagaRunner>;
