import { toDirectedGraph } from '@xstate/graph';
import { NotFoundError } from '../domain/errors.ts';
import { positionIdFor } from '../domain/ids.ts';
import { machineFor, sagaVersionOf } from '../machines/registry.ts';
import type { EventStore } from './ports/eventStore.ts';
import { replaySaga } from './sagaRunner.ts';

/** Each machine version as nodes and edges, computed once: none changes while the process runs. */
const graphs = new Map<number, ReturnType<typeof toDirectedGraph>>();

/**
 * What a saga is doing, for operators and the built-in viewer: its state rebuilt from the stored
 * events, the step it waits on, its history and the machine it runs on.
 */
export async function sagaView(store: EventStore, orderId: string) {
  const events = await store.loadStreams([orderId, positionIdFor(orderId)]);
  if (events[0]?.event_type !== 'OrderAccepted')
    throw new NotFoundError(`There is no order with id ${orderId}`);
  const version = sagaVersionOf(events[0].metadata);
  const machine = machineFor(version);
  const { snapshot, pending } = replaySaga(events, machine);
  const graph = graphs.get(version) ?? toDirectedGraph(machine);
  graphs.set(version, graph);
  return {
    order_id: orderId,
    position_id: positionIdFor(orderId),
    state: snapshot.value,
    status: snapshot.status === 'done' ? 'finished' : 'running',
    saga_version: version,
    pending_step: pending,
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

export function createSagaViews(store: EventStore): SagaViews {
  return { view: (orderId) => sagaView(store, orderId) };
}
