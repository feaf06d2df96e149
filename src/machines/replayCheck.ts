import { initialTransition, transition } from 'xstate';
import type { AnyStateMachine, StateValue } from 'xstate';

/** An event as replay needs it: for a stored one, the domain event's type and payload. */
export interface HistoryEvent {
  readonly type: string;
  readonly data?: unknown;
}

/** Where replaying a history through a machine ends. */
export interface ReplayEnd {
  /** The state, dotted for nested states: `quotingPrice`, `executingSwap.awaitingOutcome`. */
  readonly state: string;
  readonly status: 'active' | 'done' | 'error' | 'stopped';
  /** The command the state asks the runner for (its entry `runStep`); null once the saga is done. */
  readonly pending: string | null;
  /** The first event the machine did not accept (replay stops there). */
  readonly refused?: { readonly index: number; readonly type: string; readonly reason: string };
}

/** The events after which nothing follows on an order stream: a saga that stored one has ended. */
const TERMINAL = new Set(['OrderCompleted', 'OrderFailed']);

/** The machine's action that names the state's command (see `runStep` in orderSaga.ts). */
const RUN_STEP = 'runStep';

export function stateName(value: StateValue): string {
  return typeof value === 'string'
    ? value
    : Object.entries(value)
        .map(([key, child]) => (child === undefined ? key : `${key}.${stateName(child)}`))
        .join(',');
}

function commandIn(actions: readonly { type: string; params?: unknown }[]): string | undefined {
  const named = actions.filter((action) => action.type === RUN_STEP);
  const params = named.at(-1)?.params as { step?: unknown } | undefined;
  return typeof params?.step === 'string' ? params.step : undefined;
}

/**
 * Replays a history through `machine` with the pure `transition()`, as the runner rebuilds a saga,
 * but stops at the first event the machine does not accept: one its state has no transition for,
 * one after the saga ended, or one whose transition throws. The runner would skip such an event
 * silently and carry on from a state that no longer matches what was stored.
 */
export function replayThrough(machine: AnyStateMachine, events: readonly HistoryEvent[]): ReplayEnd {
  let [snapshot, actions] = initialTransition(machine);
  let pending = commandIn(actions) ?? null;
  const state = () => stateName(snapshot.value as StateValue);
  const end = (refused?: ReplayEnd['refused']): ReplayEnd => ({
    state: state(),
    status: snapshot.status,
    pending: snapshot.status === 'done' ? null : pending,
    ...(refused ? { refused } : {}),
  });
  for (const [index, event] of events.entries()) {
    if (snapshot.status !== 'active')
      return end({ index, type: event.type, reason: `stored after the saga ended (${snapshot.status})` });
    if (!snapshot.can(event)) return end({ index, type: event.type, reason: `not accepted in ${state()}` });
    try {
      [snapshot, actions] = transition(machine, snapshot, event);
    } catch (error) {
      return end({ index, type: event.type, reason: `threw: ${(error as Error).message}` });
    }
    // States that an event leaves unchanged run no entry action and keep the command they asked for.
    pending = commandIn(actions) ?? pending;
  }
  return end();
}

/** A history's saga has not ended: no terminal event is stored. */
export const isOpen = (events: readonly HistoryEvent[]): boolean => !events.some((e) => TERMINAL.has(e.type));

/** Why the runner, driving this saga with `end`'s machine, would strand it; undefined when it would not. */
export function strandedBecause(end: ReplayEnd, open: boolean): string | undefined {
  const at = `event ${(end.refused?.index ?? 0) + 1}`;
  if (end.refused) return `${end.refused.type} (${at}) ${end.refused.reason}`;
  if (end.status === 'error' || end.status === 'stopped') return `the machine ends in status ${end.status}`;
  if (open && end.status === 'done')
    return `the machine ends it in ${end.state} though no terminal event is stored`;
  if (open && end.pending === null) return `no command to run in ${end.state}`;
  if (!open && end.status !== 'done')
    return `a terminal event is stored but the machine is still in ${end.state}`;
  return undefined;
}

/** What replaying one saga found. */
export type ReplayFinding =
  /** Its recorded version has no machine here: the runner refuses to drive it. */
  | { readonly kind: 'unregistered'; readonly version: number }
  /** The machine would strand it: `recorded` is the one the runner uses for it, `current` the newest. */
  | { readonly kind: 'stuck'; readonly under: 'recorded' | 'current'; readonly detail: string }
  /** The current machine takes it to another state or command than its recorded version's machine. */
  | { readonly kind: 'diverges'; readonly detail: string };

export interface SagaReplayCheck {
  readonly open: boolean;
  readonly findings: readonly ReplayFinding[];
}

const where = (end: ReplayEnd) => `${end.state} (${end.pending ?? end.status})`;

/**
 * Replays a saga's stored events through the machine of the version it recorded and through the
 * current machine (once when they are the same), and reports what would strand it or set the two
 * apart. Pure: the histories and machines are given.
 */
export function checkSagaReplay(
  events: readonly HistoryEvent[],
  machines: {
    readonly version: number;
    /** The machine registered for `version`; undefined when none is. */
    readonly recorded: AnyStateMachine | undefined;
    readonly current: AnyStateMachine;
  },
): SagaReplayCheck {
  const open = isOpen(events);
  const findings: ReplayFinding[] = [];
  const current = replayThrough(machines.current, events);
  const currentStrands = strandedBecause(current, open);
  if (!machines.recorded) {
    findings.push({ kind: 'unregistered', version: machines.version });
    if (currentStrands) findings.push({ kind: 'stuck', under: 'current', detail: currentStrands });
    return { open, findings };
  }
  const recorded =
    machines.recorded === machines.current ? current : replayThrough(machines.recorded, events);
  const recordedStrands = strandedBecause(recorded, open);
  if (recordedStrands) findings.push({ kind: 'stuck', under: 'recorded', detail: recordedStrands });
  if (recorded === current) return { open, findings };
  if (currentStrands) findings.push({ kind: 'stuck', under: 'current', detail: currentStrands });
  else if (!recordedStrands && where(recorded) !== where(current))
    findings.push({ kind: 'diverges', detail: `${where(current)} instead of ${where(recorded)}` });
  return { open, findings };
}

/**
 * Whether a finding puts a saga at risk: every finding on an open saga (it must still be driven,
 * and only its recorded version can drive it), and on a finished one a recorded machine that does
 * not end it (a redelivered message would make the runner take it for unfinished). A finished saga
 * that only the current machine would replay differently is harmless while its version stays
 * registered, and one whose version is retired is never driven again.
 */
export function isProblem(check: SagaReplayCheck): boolean {
  return check.open
    ? check.findings.length > 0
    : check.findings.some((f) => f.kind === 'stuck' && f.under === 'recorded');
}
