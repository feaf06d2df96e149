import { toDirectedGraph } from '@xstate/graph';
import { NotFoundError } from '../domain/errors.ts';
import { positionIdFor } from '../domain/ids.ts';
import { orderSaga } from '../machines/orderSaga.ts';
import type { EventStore } from './ports/eventStore.ts';
import { replaySaga } from './sagaRunner.ts';

/** The machine as nodes and edges, computed once: it never changes while the process runs. */
let graph: ReturnType<typeof toDirectedGraph> | undefined;

/**
 * What a saga is doing, for operators and the built-in viewer: its state rebuilt from the stored
 * events, the step it waits on, its history and the machine it runs on.
 */
export async function sagaView(store: EventStore, orderId: string) {
  const events = await store.loadStreams([orderId, positionIdFor(orderId)]);
  if (events[0]?.event_type !== 'OrderAccepted')
    throw new NotFoundError(`There is no order with id ${orderId}`);
  const { snapshot, pending } = replaySaga(events);
  graph ??= toDirectedGraph(orderSaga);
  return {
    order_id: orderId,
    position_id: positionIdFor(orderId),
    state: snapshot.value,
    status: snapshot.status === 'done' ? 'finished' : 'running',
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
