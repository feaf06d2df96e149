import { randomUUID } from 'node:crypto';
import type { InspectionEvent } from 'xstate';
import type { Consumer } from './app/messages.ts';
import type { BatchingOptions } from './app/intakeBatcher.ts';
import { createOrderService } from './app/orders.ts';
import type { PriceService, TradeVenue } from './app/ports.ts';
import { sagaConsumer } from './app/sagaConsumer.ts';
import { createSagaRunner } from './app/sagaRunner.ts';
import type { SagaSettings } from './app/sagaSteps.ts';
import type { Currencies } from './domain/money.ts';
import { createInProcessDelivery } from './infra/bus/inProcessDelivery.ts';
import type { Database } from './app/ports/database.ts';
import type { Metrics } from './app/ports/metrics.ts';
import { createEventStore } from './infra/eventStore.ts';
import { createIdempotencyKeys } from './infra/idempotencyKeys.ts';
import { createInbox } from './infra/inbox.ts';
import { createNotificationStore } from './infra/notify/notificationStore.ts';
import { createUserChannelStore } from './infra/notify/userChannels.ts';
import { createSwapAudit } from './infra/swapAudit.ts';
import { logContext } from './infra/logger.ts';
import type { Logger } from './infra/logger.ts';

export interface OrdersOptions {
  readonly db: Database;
  readonly logger: Logger;
  readonly prices: PriceService;
  readonly venue: TradeVenue;
  readonly currencies: Currencies;
  readonly settings: SagaSettings;
  readonly now?: () => Date;
  readonly newId?: () => string;
  readonly inspect?: (event: InspectionEvent) => void;
  /** Called after every committed append: wakes whatever relays the outbox. */
  readonly onAppended?: () => void;
  /** How long an order's Idempotency-Key is kept (default 24 h). */
  readonly idempotencyKeyTtlMs?: number;
  /** The event types the outbox carries to the bus (default: all); see `consumedEventTypes`. */
  readonly outboxEventTypes?: readonly string[] | undefined;
  /** Group commit of order intake (default: 4 lanes, 64 orders a statement). */
  readonly intakeBatching?: BatchingOptions;
  /** What the process counts for `GET /metrics` (nothing when unset). */
  readonly metrics?: Metrics;
}

/** The event types some consumer takes: all an outbox needs to carry to them. */
export function consumedEventTypes(consumers: readonly Pick<Consumer, 'eventTypes'>[]): string[] {
  return [...new Set(consumers.flatMap((consumer) => consumer.eventTypes))];
}

/**
 * The bus-independent part of a process: event store → order intake, and the orchestrator
 * (saga runner behind its consumer), ready to be handed to a bus.
 */
export function wireOrders(options: OrdersOptions) {
  const now = options.now ?? (() => new Date());
  const newId = options.newId ?? randomUUID;
  const onAppended = options.onAppended;
  const store = createEventStore(options.db, {
    logger: options.logger,
    outboxEventTypes: options.outboxEventTypes,
    ...(onAppended ? { onAppended } : {}),
  });
  const audit = createSwapAudit(options.db);
  const runner = createSagaRunner({
    audit,
    store,
    prices: options.prices,
    venue: options.venue,
    currencies: options.currencies,
    settings: options.settings,
    now,
    newId,
    logger: options.logger,
    logContext,
    ...(options.inspect ? { inspect: options.inspect } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  const orchestrator = sagaConsumer(createInbox(options.db), runner);
  const keys = createIdempotencyKeys(options.db);
  const orders = createOrderService({
    store,
    now,
    newId,
    keys,
    logger: options.logger,
    ...(options.idempotencyKeyTtlMs ? { keyTtlMs: options.idempotencyKeyTtlMs } : {}),
    ...(options.intakeBatching ? { batching: options.intakeBatching } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  return { store, runner, orchestrator, orders, audit, keys };
}

/**
 * The notifier's statements are group-committed: while two of a kind are in flight, the next
 * takes everything that queued meanwhile. Its statements are most of an order's commits
 * (create the rows, record the send, mark the message), and none is on the order's own path.
 */
const NOTIFIER_BATCHING = { lanes: 2 } as const;

/** The notifier's ports on `db`: notification rows, users' channels (and an order's user), the inbox. */
export function notifierPorts(db: Database) {
  return {
    notifications: createNotificationStore(db, NOTIFIER_BATCHING),
    channels: createUserChannelStore(db),
    inbox: createInbox(db, NOTIFIER_BATCHING),
  };
}

export interface OrderFlowOptions extends Omit<OrdersOptions, 'onAppended'> {
  /** Messages the in-process delivery handles at once. */
  readonly concurrency?: number;
  /** Wraps the orchestrator, e.g. to observe finished sagas in benchmarks and tests. */
  readonly decorate?: (orchestrator: Consumer) => Consumer;
  /** More consumers on the same bus (the notifier). */
  readonly consumers?: readonly Consumer[];
}

/**
 * The order flow of one process on the in-process bus, wired once for the service, benchmarks and
 * tests alike: event store → order intake → outbox → in-process delivery → orchestrator → saga
 * runner. Every append wakes the delivery, so a saga starts without waiting for the next poll.
 * Call `delivery.start()` to begin delivering and `delivery.stop()` to drain.
 */
export function wireOrderFlow(options: OrderFlowOptions) {
  let wake = () => {};
  const wired = wireOrders({ ...options, onAppended: () => wake() });
  const orchestrator = options.decorate ? options.decorate(wired.orchestrator) : wired.orchestrator;
  const delivery = createInProcessDelivery({
    db: options.db,
    logger: options.logger,
    consumers: [orchestrator, ...(options.consumers ?? [])],
    ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  wake = delivery.wake;
  return { ...wired, delivery };
}
