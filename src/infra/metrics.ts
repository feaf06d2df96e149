import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ALERT_KINDS } from '../app/alerts.ts';
import type { Queryable } from '../app/ports/database.ts';
import type { Logger } from '../app/ports/logger.ts';
import type { Metrics } from '../app/ports/metrics.ts';

/** Every metric name starts with it. */
export const METRIC_PREFIX = 'market_order_saga_';

/**
 * Seconds. Saga steps call a price service and a venue (milliseconds to a few seconds, up to the
 * call timeout); HTTP answers take from well under a millisecond to a database round trip.
 */
const STEP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** What `GET /metrics` needs: the exposition text and its content type. */
export interface MetricsEndpoint {
  readonly contentType: string;
  render(): Promise<string>;
}

export interface ServiceMetrics extends Metrics, MetricsEndpoint {
  /** The process's registry (tests read single values from it). */
  readonly registry: Registry;
}

interface DatabaseState {
  open: number;
  suspended: number;
  stuck: number;
  backlog: number;
  lag_seconds: number;
  alerts: Record<string, number> | string | null;
}

/**
 * What the database holds, in one statement per scrape: open sagas (the few hundred rows of
 * open_sagas), the suspended and stuck ones among them (events looked up only for sagas accepted
 * before the threshold), the outbox backlog and the age of its oldest unpublished row (by the
 * partial index on unpublished rows), and the active alerts by kind.
 */
const STATE_SQL = `
WITH sagas AS (
  SELECT count(*)::int AS open,
         count(*) FILTER (WHERE s.resumes > 0)::int AS suspended,
         count(*) FILTER (WHERE CASE
           WHEN s.accepted_at < now() - $1 * interval '1 millisecond'
           THEN (SELECT max(e.created_at) FROM events e WHERE e.aggregate_id = s.order_id)
                < now() - $1 * interval '1 millisecond'
           ELSE false END)::int AS stuck
  FROM open_sagas s),
outbox_state AS (
  SELECT count(*)::int AS backlog,
         COALESCE(EXTRACT(EPOCH FROM now() - (
           SELECT o.created_at FROM outbox o WHERE NOT o.published ORDER BY o.id LIMIT 1)), 0)::float8
           AS lag_seconds
  FROM outbox WHERE NOT published),
alert_state AS (
  SELECT json_object_agg(kind, n) AS alerts
  FROM (SELECT kind, count(*)::int AS n FROM alerts WHERE resolved_at IS NULL GROUP BY kind) k)
SELECT * FROM sagas, outbox_state, alert_state`;

export interface MetricsOptions {
  /** Where open sagas, the outbox and the alerts are read at each scrape. */
  readonly db: Queryable;
  /** An open saga without a new event for this long counts as stuck (STUCK_AFTER_MS). */
  readonly stuckAfterMs: number;
  readonly logger: Logger;
  /** Process metrics (CPU, memory, event loop, GC) as prom-client collects them (default true). */
  readonly processMetrics?: boolean;
  /**
   * Longest wait for the database at a scrape (default 2 s): a database behind a dropped network
   * may never answer, and the scrape must still (with `database_up 0`).
   */
  readonly databaseTimeoutMs?: number;
}

/**
 * The process's metrics on a prom-client registry of its own (never the library's global one, so
 * two services in one process, as in tests, do not mix). Counters and histograms live in memory and
 * are bumped by the code that does the work; gauges of what the database holds are read in one
 * query when `/metrics` is scraped, so a scrape costs that query and nothing per order.
 */
export function createServiceMetrics(options: MetricsOptions): ServiceMetrics {
  const { db, stuckAfterMs, logger } = options;
  const registry = new Registry();
  const name = (suffix: string) => `${METRIC_PREFIX}${suffix}`;
  const registers = [registry];

  const accepted = new Counter({ name: name('orders_accepted_total'), help: 'Orders accepted', registers });
  const completed = new Counter({
    name: name('orders_completed_total'),
    help: 'Orders completed (OrderCompleted stored by this process)',
    registers,
  });
  const failed = new Counter({
    name: name('orders_failed_total'),
    help: 'Orders failed (OrderFailed stored by this process), by reason',
    labelNames: ['reason'],
    registers,
  });
  const steps = new Histogram({
    name: name('saga_step_duration_seconds'),
    help: 'Saga steps that call the outside world (price, venue), by step and outcome',
    labelNames: ['step', 'outcome'],
    buckets: STEP_BUCKETS,
    registers,
  });
  const deliveries = new Counter({
    name: name('consumer_deliveries_total'),
    help: 'Messages handed to a consumer, redeliveries included',
    labelNames: ['consumer'],
    registers,
  });
  const redeliveries = new Counter({
    name: name('consumer_redeliveries_total'),
    help: 'Messages handed to a consumer again (after a failure, a lost connection, a retry)',
    labelNames: ['consumer'],
    registers,
  });
  const deadLetters = new Counter({
    name: name('consumer_dead_letters_total'),
    help: 'Messages a consumer could not handle, dead-lettered',
    labelNames: ['consumer'],
    registers,
  });
  const notifications = new Counter({
    name: name('notifications_total'),
    help: 'Notification attempts by channel and outcome (sent, failed, skipped, retrying)',
    labelNames: ['channel', 'outcome'],
    registers,
  });
  const http = new Histogram({
    name: name('http_request_duration_seconds'),
    help: 'HTTP requests by method, route pattern and status',
    labelNames: ['method', 'route', 'status'],
    buckets: HTTP_BUCKETS,
    registers,
  });
  const alertsRaised = new Counter({
    name: name('alerts_raised_total'),
    help: 'Alerts this process raised, by kind',
    labelNames: ['kind'],
    registers,
  });

  const gauge = (suffix: string, help: string, labelNames: string[] = []) =>
    new Gauge({ name: name(suffix), help, labelNames, registers });
  const sagasOpen = gauge('sagas_open', 'Sagas that have not ended');
  const sagasSuspended = gauge(
    'sagas_suspended',
    'Open sagas the sweeper had to resume (typically waiting for the venue to settle a swap)',
  );
  const sagasStuck = gauge(
    'sagas_stuck',
    `Open sagas with no new event for STUCK_AFTER_MS (${stuckAfterMs} ms)`,
  );
  const outboxBacklog = gauge('outbox_backlog', 'Outbox rows not yet published');
  const outboxLag = gauge('outbox_lag_seconds', 'Age of the oldest unpublished outbox row (0: caught up)');
  const alertsActive = gauge('alerts_active', 'Active alerts by kind (all processes)', ['kind']);
  const databaseUp = gauge('database_up', '1 when the last scrape could read the database, else 0');

  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  const timeoutMs = options.databaseTimeoutMs ?? 2_000;
  async function readDatabase(): Promise<void> {
    let state: DatabaseState | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      [state] = await Promise.race([db.query<DatabaseState>(STATE_SQL, [stuckAfterMs]), late]);
    } catch (error) {
      // The scrape still answers (process metrics, counters); the gauges keep their last values.
      logger.warn({ err: error }, 'metrics: could not read the database');
      databaseUp.set(0);
      return;
    } finally {
      clearTimeout(timer);
    }
    databaseUp.set(1);
    if (!state) return;
    sagasOpen.set(state.open);
    sagasSuspended.set(state.suspended);
    sagasStuck.set(state.stuck);
    outboxBacklog.set(state.backlog);
    outboxLag.set(Number(state.lag_seconds));
    const active = (
      typeof state.alerts === 'string' ? JSON.parse(state.alerts) : (state.alerts ?? {})
    ) as Record<string, number>;
    for (const kind of ALERT_KINDS) alertsActive.set({ kind }, Number(active[kind] ?? 0));
  }

  const seconds = (ms: number) => ms / 1000;
  return {
    registry,
    contentType: registry.contentType,
    async render() {
      await readDatabase();
      return registry.metrics();
    },
    orderAccepted: () => accepted.inc(),
    orderCompleted: () => completed.inc(),
    orderFailed: (reason) => failed.inc({ reason }),
    sagaStep: (step, outcome, ms) => steps.observe({ step, outcome }, seconds(ms)),
    delivered(consumer, redelivered) {
      deliveries.inc({ consumer });
      if (redelivered) redeliveries.inc({ consumer });
    },
    deadLettered: (consumer) => deadLetters.inc({ consumer }),
    notification: (channel, outcome) => notifications.inc({ channel, outcome }),
    httpRequest: (method, route, status, ms) =>
      http.observe({ method, route, status: String(status) }, seconds(ms)),
    alertRaised: (kind) => alertsRaised.inc({ kind }),
  };
}
