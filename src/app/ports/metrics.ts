/**
 * What the service counts as it works, for `GET /metrics`. Use cases and adapters report here;
 * src/infra/metrics.ts implements it with prom-client, so nothing outside infra knows the library.
 *
 * Every call only bumps a number in memory: no I/O, no allocation worth measuring, never a
 * query per order. What lives in the database (open and stuck sagas, the outbox backlog, active
 * alerts) is read when `/metrics` is scraped, not counted here.
 */
export interface Metrics {
  /** An order was stored as accepted (not a replay of an Idempotency-Key). */
  orderAccepted(): void;
  /** This process stored the order's OrderCompleted. */
  orderCompleted(): void;
  /** This process stored the order's OrderFailed, for this reason (a FailureReason). */
  orderFailed(reason: string): void;
  /** One saga step ran (the steps that call the outside world), and how it came out. */
  sagaStep(step: string, outcome: string, ms: number): void;
  /** A bus delivered a message to a consumer; `redelivered`: not its first delivery. */
  delivered(consumer: string, redelivered: boolean): void;
  /** A message a consumer could not handle was dead-lettered. */
  deadLettered(consumer: string): void;
  /** A notification attempt came out as `sent`, `failed`, `skipped` or `retrying`. */
  notification(channel: string, outcome: NotificationOutcome): void;
  /** An HTTP request was answered; `route` is the route's pattern (`/orders/:id`), never the path. */
  httpRequest(method: string, route: string, status: number, ms: number): void;
  /** This process raised an alert (see src/app/alerts.ts). */
  alertRaised(kind: string): void;
}

export type NotificationOutcome = 'sent' | 'failed' | 'skipped' | 'retrying';

/** Counts nothing: the default wherever no metrics are wired (tests, benches, CLI commands). */
export const NO_METRICS: Metrics = {
  orderAccepted() {},
  orderCompleted() {},
  orderFailed() {},
  sagaStep() {},
  delivered() {},
  deadLettered() {},
  notification() {},
  httpRequest() {},
  alertRaised() {},
};
