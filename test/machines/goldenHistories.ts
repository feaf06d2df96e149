import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getSimplePaths } from '@xstate/graph';
import type { AnyStateMachine, EventObject, StateValue } from 'xstate';
import { ORDER_EVENT_TYPES } from '../../src/domain/events.ts';
import type { DomainEvent, FailureReason, SagaStep } from '../../src/domain/events.ts';
import { replayThrough, stateName } from '../../src/machines/replayCheck.ts';
import type { HistoryEvent, ReplayEnd } from '../../src/machines/replayCheck.ts';

/*
 * Golden histories: for every path of a released saga machine, the events a saga that took it
 * has stored, and where the saga stands after each of them. Committed under
 * test/fixtures/golden/v<version>/ when the version is released and never regenerated: they are
 * what the database may hold, whatever the machine becomes.
 */

export const GOLDEN_ROOT = join(import.meta.dirname, '..', 'fixtures', 'golden');

/** One stored event of a golden history, and where the saga stands once it is replayed. */
export interface GoldenEvent {
  readonly stream: 'order' | 'position';
  readonly event_type: string;
  readonly event_data: Record<string, unknown>;
  readonly then: { readonly state: string; readonly status: string; readonly pending: string | null };
}

export interface GoldenHistory {
  readonly version: number;
  /** The machine paths (events sent to the machine) that store this history. */
  readonly paths: readonly string[];
  readonly events: readonly GoldenEvent[];
}

const ORDER_ID = '00000000-0000-4000-8000-000000000001';
const POSITION_ID = '00000000-0000-4000-8000-000000000002';
const AT = '2026-11-24T12:00:01.000Z';

/** A payload for each stored event type; the machine folds them into its context. */
const DATA: Record<DomainEvent['type'], Record<string, unknown>> = {
  OrderAccepted: {
    order_id: ORDER_ID,
    user_id: 'golden',
    from_amount: '1000',
    from_currency: 'USDT',
    to_currency: 'BTC',
    order_type: 'market',
    accepted_at: '2026-11-24T12:00:00.000Z',
  },
  PriceQuoted: { price: '0.00001', to_amount: '0.01', quoted_at: AT, source: 'golden' },
  PositionCreated: {
    position_id: POSITION_ID,
    user_id: 'golden',
    order_id: ORDER_ID,
    from_currency: 'USDT',
    to_currency: 'BTC',
    created_at: AT,
  },
  SwapExecuting: { idempotency_key: `swap-${ORDER_ID}`, position_id: POSITION_ID, started_at: AT },
  SwapExecuted: { tx_hash: '0x1', to_amount: '0.0099', executed_price: '0.0000099', executed_at: AT },
  OrderCompleted: {
    order_id: ORDER_ID,
    position_id: POSITION_ID,
    from_amount: '1000',
    from_currency: 'USDT',
    to_amount: '0.0099',
    to_currency: 'BTC',
    executed_price: '0.0000099',
    tx_hash: '0x1',
    completed_at: AT,
  },
  OrderFailed: {
    order_id: ORDER_ID,
    reason: 'deadline_exceeded',
    failed_step: 'quote_price',
    failed_at: AT,
  },
  PositionUpdated: {
    position_id: POSITION_ID,
    order_id: ORDER_ID,
    from_amount: '1000',
    to_amount: '0.0099',
    executed_price: '0.0000099',
    total_from_amount: '1000',
    total_to_amount: '0.0099',
    updated_at: AT,
  },
  PositionClosed: { position_id: POSITION_ID, reason: 'order_failed', closed_at: AT },
};

/** The step a command belongs to, and a failure it really meets there (the runner's STEP_OF). */
const FAILURE_OF: Record<string, { failed_step: SagaStep; reason: FailureReason }> = {
  quotingPrice: { failed_step: 'quote_price', reason: 'price_unavailable' },
  openingPosition: { failed_step: 'open_position', reason: 'deadline_exceeded' },
  sendingSwap: { failed_step: 'execute_swap', reason: 'deadline_exceeded' },
  awaitingOutcome: { failed_step: 'execute_swap', reason: 'venue_rejected' },
};

/**
 * The events the graph sends the machine: the stored ones that move it (position updates and
 * closes only keep its context current, and are added where the runner stores them), and a step
 * failure in each state that runs a command.
 */
function graphEvents(pending: string | null): SentEvent[] {
  const moving = Object.entries(DATA)
    .filter(([type]) => type !== 'PositionUpdated' && type !== 'PositionClosed')
    .map(([type, data]) => ({ type, data }));
  const failure = pending ? FAILURE_OF[pending] : undefined;
  return failure ? [...moving, { type: 'StepFailed', ...failure, detail: 'golden' }] : moving;
}

/** An event sent to the machine: a stored one (with data) or a step outcome. */
type SentEvent = EventObject & Record<string, unknown>;

interface Stored {
  readonly stream: 'order' | 'position';
  readonly type: string;
  readonly data: Record<string, unknown>;
}

const streamOf = (type: string): 'order' | 'position' =>
  (ORDER_EVENT_TYPES as readonly string[]).includes(type) ? 'order' : 'position';

/**
 * What a saga that took this path has stored: a step failure is not stored, the compensation it
 * causes is (its reason on OrderFailed); completing stores PositionUpdated before OrderCompleted,
 * and compensating an opened position stores PositionClosed before OrderFailed — one append each.
 */
function storedBy(path: readonly SentEvent[], machine: AnyStateMachine): Stored[] {
  const stored: Stored[] = [];
  let failure: Record<string, unknown> | undefined;
  let positionOpen = false;
  for (const [i, event] of path.entries()) {
    const data = (event.data ?? {}) as Record<string, unknown>;
    if (event.type === 'StepFailed') {
      const { type: _type, detail: _detail, ...failed } = event;
      failure = failed;
      continue;
    }
    if (event.type === 'PositionCreated') positionOpen = true;
    if (event.type === 'OrderCompleted')
      stored.push({ stream: 'position', type: 'PositionUpdated', data: DATA.PositionUpdated });
    if (event.type !== 'OrderFailed') {
      stored.push({ stream: streamOf(event.type), type: event.type, data });
      continue;
    }
    if (positionOpen) stored.push({ stream: 'position', type: 'PositionClosed', data: DATA.PositionClosed });
    // An OrderFailed met without a step failure: another worker compensated past the deadline,
    // at the step this saga was at.
    const pending = replayThrough(machine, path.slice(0, i)).pending ?? '';
    const compensated = failure ?? {
      failed_step: FAILURE_OF[pending]?.failed_step,
      reason: 'deadline_exceeded',
    };
    stored.push({ stream: 'order', type: event.type, data: { ...data, ...compensated } });
  }
  return stored;
}

const describePath = (path: readonly SentEvent[]) =>
  path.map((e) => (e.type === 'StepFailed' ? `StepFailed(${String(e.reason)})` : e.type)).join(' → ');

const thenOf = (end: ReplayEnd): GoldenEvent['then'] => ({
  state: end.state,
  status: end.status,
  pending: end.pending,
});

/** A file name for a history: how its saga ended, and where. */
function nameOf(path: readonly SentEvent[], machine: AnyStateMachine): string {
  if (path.at(-1)?.type === 'OrderCompleted') return 'completed';
  const failedAt = path.findIndex((e) => e.type === 'StepFailed' || e.type === 'OrderFailed');
  const at = replayThrough(machine, path.slice(0, failedAt)).state;
  return path[failedAt]?.type === 'StepFailed' ? `compensated-in-${at}` : `failed-in-${at}`;
}

/**
 * The golden histories of a machine: every simple path from @xstate/graph to a final state, as
 * the events its saga stores, each with the state the machine is in after it. Paths that store
 * the same events make one history.
 */
export function goldenHistoriesOf(machine: AnyStateMachine, version: number): Map<string, GoldenHistory> {
  const paths = getSimplePaths(machine, {
    events: (snapshot) => graphEvents(replayPending(machine, snapshot)),
    serializeState: (snapshot) => JSON.stringify(snapshot.value),
    serializeEvent: (event) => describePath([event as SentEvent]),
  }).filter((path) => path.state.status === 'done');

  const histories = new Map<string, GoldenHistory>();
  const byContent = new Map<string, string>();
  for (const path of paths) {
    const sent = path.steps.slice(1).map((step) => step.event as SentEvent);
    const stored = storedBy(sent, machine);
    const content = JSON.stringify(stored);
    const known = byContent.get(content);
    const existing = known ? histories.get(known) : undefined;
    if (known && existing) {
      histories.set(known, { ...existing, paths: [...existing.paths, describePath(sent)] });
      continue;
    }
    let name = nameOf(sent, machine);
    for (let n = 2; histories.has(name); n++) name = `${nameOf(sent, machine)}-${n}`;
    byContent.set(content, name);
    histories.set(name, {
      version,
      paths: [describePath(sent)],
      events: stored.map((event, i) => ({
        stream: event.stream,
        event_type: event.type,
        event_data: event.data,
        then: thenOf(replayThrough(machine, toReplay(stored.slice(0, i + 1)))),
      })),
    });
  }
  return histories;
}

/** The pending command of a snapshot the graph reached: its state's entry names it. */
function replayPending(machine: AnyStateMachine, snapshot: { value: StateValue }): string | null {
  const node = machine.getStateNodeById(`${machine.id}.${stateName(snapshot.value)}`);
  for (const action of node.entry) {
    const { type, params } = action as { type?: string; params?: { step?: string } };
    if (type === 'runStep' && params?.step) return params.step;
  }
  return null;
}

const toReplay = (events: readonly { type: string; data: unknown }[]): HistoryEvent[] =>
  events.map(({ type, data }) => ({ type, data }));

/** The stored events of a golden history, as replay takes them. */
export const eventsOf = (history: GoldenHistory): HistoryEvent[] =>
  history.events.map((e) => ({ type: e.event_type, data: e.event_data }));

/** Every committed golden history, by version. */
export function committedGoldenHistories(): Map<number, Map<string, GoldenHistory>> {
  const versions = new Map<number, Map<string, GoldenHistory>>();
  for (const dir of readdirSync(GOLDEN_ROOT)) {
    const version = Number(/^v(\d+)$/.exec(dir)?.[1]);
    if (!Number.isInteger(version)) throw new Error(`Unexpected ${dir} in ${GOLDEN_ROOT}`);
    const histories = new Map<string, GoldenHistory>();
    for (const file of readdirSync(join(GOLDEN_ROOT, dir)).sort()) {
      const history = JSON.parse(readFileSync(join(GOLDEN_ROOT, dir, file), 'utf8')) as GoldenHistory;
      histories.set(file.replace(/\.json$/, ''), history);
    }
    versions.set(version, histories);
  }
  return versions;
}

/**
 * Where replaying a golden history through `machine` leaves what the released machine did:
 * after every stored event (a saga may be in flight at any of them), the same state, status and
 * pending command, and no event refused. Empty when the machine replays it as released.
 */
export function goldenMismatches(history: GoldenHistory, machine: AnyStateMachine): string[] {
  const events = eventsOf(history);
  const mismatches: string[] = [];
  for (const [i, expected] of history.events.entries()) {
    const end = replayThrough(machine, events.slice(0, i + 1));
    const got = thenOf(end);
    if (end.refused) {
      mismatches.push(`${expected.event_type} (event ${i + 1}): ${end.refused.reason}`);
      break;
    }
    if (JSON.stringify(got) !== JSON.stringify(expected.then)) {
      mismatches.push(
        `after ${expected.event_type} (event ${i + 1}): ${JSON.stringify(got)} instead of ${JSON.stringify(expected.then)}`,
      );
    }
  }
  return mismatches;
}
