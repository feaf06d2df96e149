import { createActor, initialTransition, transition } from 'xstate';
import type { Actor, InspectionEvent, SnapshotFrom } from 'xstate';
import type { OrderEvent, PositionEvent } from '../domain/events.ts';
import { positionIdFor } from '../domain/ids.ts';
import { orderSaga } from '../machines/orderSaga.ts';
import type { OrderSagaMachine, SagaCommand, SagaEvent } from '../machines/orderSaga.ts';
import { ConcurrencyError } from '../infra/eventStore.ts';
import type { EventStore, StoredEvent, StreamAppend } from '../infra/eventStore.ts';
import type { Logger } from '../infra/logger.ts';
import { toNewEvents } from './orders.ts';
import { runCommand } from './sagaSteps.ts';
import type { StepDeps, StepOutcome } from './sagaSteps.ts';

export type SagaSnapshot = SnapshotFrom<OrderSagaMachine>;

/** How a run ended. `suspended`: waiting on something outside (the venue); resume later. */
export type SagaRunResult =
  | { readonly status: 'completed' | 'failed'; readonly orderId: string }
  | { readonly status: 'suspended'; readonly orderId: string; readonly detail: string }
  | { readonly status: 'not_found'; readonly orderId: string };

export interface SagaRunnerDeps extends StepDeps {
  readonly store: EventStore;
  readonly newId: () => string;
  readonly logger: Logger;
  /** Receives every saga actor's inspection events (e.g. the Stately inspector). */
  readonly inspect?: (event: InspectionEvent) => void;
  /** Test hook: called after each step's events are stored, before the actor moves. */
  readonly afterAppend?: (orderId: string, command: SagaCommand) => void | Promise<void>;
  /** Test hook: called after a step ran, before its events are stored. */
  readonly beforeAppend?: (orderId: string, command: SagaCommand) => void | Promise<void>;
}

const toSagaEvent = (event: StoredEvent): SagaEvent =>
  ({ type: event.event_type, data: event.event_data }) as unknown as OrderEvent | PositionEvent;

const commandsIn = (actions: readonly { type: string; params?: unknown }[]): SagaCommand[] =>
  actions.flatMap((action) =>
    action.type === 'runStep' ? [(action.params as { command: SagaCommand }).command] : [],
  );

/**
 * Folds stored events through the machine's pure `transition()`: the snapshot the saga is in,
 * and the command its current state asks for. Nothing runs; the last entry action names the
 * pending step.
 */
export function replaySaga(events: readonly StoredEvent[]): {
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

class Conflict extends Error {}

/**
 * Drives order sagas: rebuilds each from its stored events, runs the pending step through the
 * ports, stores the step's events (with outbox rows) at the expected versions, and only then
 * advances the live actor — until a terminal state. A crash anywhere leaves events from which a
 * new runner resumes; a runner that loses a race on a version reloads and carries on from what
 * the winner stored.
 */
export function createSagaRunner(deps: SagaRunnerDeps) {
  const active = new Map<string, Actor<OrderSagaMachine>>();

  async function drive(orderId: string, loaded: readonly StoredEvent[]): Promise<SagaRunResult> {
    const { snapshot, pending } = replaySaga(loaded);
    if (snapshot.status === 'done')
      return { status: snapshot.value === 'completed' ? 'completed' : 'failed', orderId };

    const positionId = positionIdFor(orderId);
    const versions = { order: 0, position: 0 };
    for (const e of loaded) versions[e.aggregate_id === orderId ? 'order' : 'position'] += 1;
    let causationId = loaded.at(-1)?.event_id ?? null;

    const queue: SagaCommand[] = pending ? [pending] : [];
    const machine = orderSaga.provide({
      actions: { runStep: (_, params) => void queue.push(params.command) },
    });
    const actor = createActor(machine, { snapshot, ...(deps.inspect ? { inspect: deps.inspect } : {}) });
    active.set(orderId, actor);
    actor.start();
    try {
      let resume = true;
      for (let command = queue.shift(); command; command = queue.shift()) {
        const outcome: StepOutcome = await runCommand(command, actor.getSnapshot().context, deps, resume);
        resume = false;
        if (outcome.kind === 'suspended') {
          deps.logger.warn({ orderId, command, detail: outcome.detail }, 'saga suspended');
          return { status: 'suspended', orderId, detail: outcome.detail };
        }
        if (outcome.kind === 'failed') {
          actor.send({
            type: 'StepFailed',
            reason: outcome.reason,
            failed_step: outcome.failed_step,
            detail: outcome.detail,
          });
          continue;
        }

        const now = deps.now().toISOString();
        const context = { correlationId: orderId, causationId, now, newId: deps.newId };
        const streams: StreamAppend[] = [];
        if (outcome.position.length > 0) {
          streams.push({
            aggregate_id: positionId,
            aggregate_type: 'position',
            expected_version: versions.position,
            events: toNewEvents(outcome.position, context),
          });
        }
        if (outcome.position.length === 0 && outcome.order.length === 0) continue;
        // The order stream is always part of the append, if only as a condition: nothing is stored
        // for a saga whose order moved on meanwhile (e.g. another worker compensated it).
        streams.push({
          aggregate_id: orderId,
          aggregate_type: 'order',
          expected_version: versions.order,
          events: toNewEvents(outcome.order, context),
        });
        await deps.beforeAppend?.(orderId, command);
        let stored: readonly StoredEvent[];
        try {
          const result = await deps.store.append(streams);
          if (result.status !== 'appended')
            throw new Conflict(`events already stored: ${result.event_ids.join(', ')}`);
          stored = result.events;
        } catch (error) {
          if (error instanceof ConcurrencyError) throw new Conflict(error.message);
          throw error;
        }
        await deps.afterAppend?.(orderId, command);
        // One append may pass through several states; only the last one's command is pending.
        queue.length = 0;
        for (const event of stored) {
          versions[event.aggregate_id === orderId ? 'order' : 'position'] = event.version;
          causationId = event.event_id;
          actor.send(toSagaEvent(event));
        }
        queue.splice(0, queue.length - 1);
      }
      const final = actor.getSnapshot();
      if (final.status !== 'done')
        throw new Error(`Saga ${orderId} stopped in ${JSON.stringify(final.value)} with no step`);
      return { status: final.value === 'completed' ? 'completed' : 'failed', orderId };
    } finally {
      actor.stop();
      active.delete(orderId);
    }
  }

  return {
    /**
     * Runs an order's saga until it ends or must wait. Safe to call for any order at any time, as
     * often as wanted, from any number of processes: a finished saga is left as it is.
     */
    async run(orderId: string): Promise<SagaRunResult> {
      for (let attempt = 1; ; attempt++) {
        const loaded = await deps.store.loadStreams([orderId, positionIdFor(orderId)]);
        if (loaded[0]?.event_type !== 'OrderAccepted') return { status: 'not_found', orderId };
        try {
          return await drive(orderId, loaded);
        } catch (error) {
          if (!(error instanceof Conflict) || attempt >= 20) throw error;
          deps.logger.debug(
            { orderId, attempt, reason: error.message },
            'saga raced another worker; reloading',
          );
        }
      }
    },
    /** The live actor of a saga being driven in this process, for inspection. */
    actor: (orderId: string): Actor<OrderSagaMachine> | undefined => active.get(orderId),
    get activeCount(): number {
      return active.size;
    },
  };
}

export type SagaRunner = ReturnType<typeof createSagaRunner>;
