import { toDirectedGraph } from '@xstate/graph';
import { NotFoundError } from '../domain/errors.ts';
import { positionIdFor } from '../domain/ids.ts';
import { machineFor, sagaVersionOf } from '../machines/registry.ts';
import type { EventStore } from './ports/eventStore.ts';
import { replaySaga } from './sagaRunner.ts';
import { DEFAULT_SAGA_SETTINGS } from './sagaSteps.ts';

type DirectedNode = ReturnType<typeof toDirectedGraph>;

/** A state of the machine as the viewer draws it: @xstate/graph's node plus what a statechart shows. */
export interface MachineNode {
  /** The state's full id, e.g. `orderSaga.executingSwap.sendingSwap`. */
  readonly id: string;
  /** Its own name, e.g. `sendingSwap`. */
  readonly key: string;
  readonly type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** A compound state's initial child (its id); null otherwise. */
  readonly initial: string | null;
  readonly children: readonly MachineNode[];
  /** Transitions leaving this state, each labelled with its event. */
  readonly edges: readonly {
    readonly source: string;
    readonly target: string;
    readonly label: { readonly text: string };
  }[];
}

function nodeOf(node: DirectedNode): MachineNode {
  const { stateNode } = node;
  const initial = stateNode.type === 'compound' ? (stateNode.initial.target[0]?.id ?? null) : null;
  return {
    id: node.id,
    key: stateNode.key,
    type: stateNode.type,
    initial,
    children: node.children.map(nodeOf),
    edges: node.edges.map((edge) => ({
      source: edge.source.id,
      target: edge.target.id,
      label: { text: edge.label.text },
    })),
  };
}

/** Each machine version as nodes and edges, computed once: none changes while the process runs. */
const graphs = new Map<number, MachineNode>();

/**
 * What a saga is doing, for operators and the built-in viewer: its state rebuilt from the stored
 * events, the step it waits on, its deadline, its history and the machine it runs on.
 * `deadlineMs` is the runner's SAGA_DEADLINE_MS.
 */
export async function sagaView(
  store: EventStore,
  orderId: string,
  deadlineMs: number = DEFAULT_SAGA_SETTINGS.deadlineMs,
) {
  const events = await store.loadStreams([orderId, positionIdFor(orderId)]);
  if (events[0]?.event_type !== 'OrderAccepted')
    throw new NotFoundError(`There is no order with id ${orderId}`);
  const version = sagaVersionOf(events[0].metadata);
  const machine = machineFor(version);
  const { snapshot, pending } = replaySaga(events, machine);
  const graph = graphs.get(version) ?? nodeOf(toDirectedGraph(machine));
  graphs.set(version, graph);
  const acceptedAt = events[0].event_data.accepted_at;
  return {
    order_id: orderId,
    position_id: positionIdFor(orderId),
    state: snapshot.value,
    status: snapshot.status === 'done' ? 'finished' : 'running',
    saga_version: version,
    pending_step: pending,
    accepted_at: acceptedAt,
    // The time itself, also once the saga has ended: the viewer tells whether it ended in time.
    deadline: new Date(Date.parse(acceptedAt) + deadlineMs).toISOString(),
    context: snapshot.context,
    events: events.map((e) => ({
      event_type: e.event_type,
      stream: e.aggregate_type,
      version: e.version,
      recorded_at: e.created_at,
    })),
    machine: graph,
  };
}

export type SagaView = Awaited<ReturnType<typeof sagaView>>;

/** The saga views of `store`'s orders (`GET /orders/:id/saga`). */
export interface SagaViews {
  /** NotFoundError when there is no such order. */
  view(orderId: string): Promise<SagaView>;
}

/** `deadlineMs`: the saga deadline the runner applies (SAGA_DEADLINE_MS; its default when unset). */
export function createSagaViews(store: EventStore, deadlineMs?: number): SagaViews {
  return { view: (orderId) => sagaView(store, orderId, deadlineMs) };
}
