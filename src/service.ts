import type { Config, Role } from './config.ts';
import type { Consumer } from './app/messages.ts';
import { ROLES } from './config.ts';
import { createApp } from './http/app.ts';
import { createKeyRing } from './app/apiKeys.ts';
import { createApiKeyStore } from './infra/apiKeys.ts';
import { createChannelsService } from './app/notifications/channels.ts';
import { createPositionService } from './app/positions.ts';
import { createReadModelQueries } from './app/readModels.ts';
import { createSagaViews } from './app/sagaView.ts';
import { createSagaAdmin } from './app/sagaAdmin.ts';
import { createDeadLetters } from './infra/deadLetters.ts';
import { createDeadLetterKeeper } from './infra/bus/rabbit/deadLetterKeeper.ts';
import type { DeadLetterKeeper } from './infra/bus/rabbit/deadLetterKeeper.ts';
import { createSagaRows } from './infra/sagaAdmin.ts';
import { createNotifier } from './app/notifications/notifier.ts';
import type { NotifierDeps } from './app/notifications/notifier.ts';
import { createSweeper } from './app/sweeper.ts';
import { createAlertEvaluator, createAlerts } from './app/alerts.ts';
import {
  createAlertConditions,
  createAlertStore,
  createDeadLetterCounter,
  operatorChannels,
} from './infra/alerts.ts';
import { createServiceMetrics } from './infra/metrics.ts';
import { createReadinessProbe } from './infra/readiness.ts';
import type { BrokerLink } from './infra/readiness.ts';
import { createReconciler } from './app/swapAudit.ts';
import { createMailer } from './infra/notify/mail.ts';
import { createTelegramClient } from './infra/notify/telegram.ts';
import type { PriceService, TradeVenue } from './app/ports.ts';
import { outboxNotifier } from './infra/bus/outboxNotifier.ts';
import { createOutboxRelay } from './infra/bus/rabbit/outboxRelay.ts';
import { createRabbitConsumer } from './infra/bus/rabbit/rabbitConsumer.ts';
import { QUEUES, topology } from './infra/bus/rabbit/topology.ts';
import type { Database } from './app/ports/database.ts';
import type { SagaInspector } from './infra/inspector.ts';
import { logContext } from './infra/logger.ts';
import type { Logger } from './infra/logger.ts';
import { serveHttp } from './infra/server.ts';
import { createHttpPriceService } from './infra/venues/httpPriceService.ts';
import { createHttpTradeWorker } from './infra/venues/httpTradeWorker.ts';
import { createSimulatedMarket } from './infra/venues/simulatedMarket.ts';
import { createHealthProbe } from './infra/health.ts';
import { createOpenSagas } from './infra/openSagas.ts';
import { createReadModels } from './infra/readModels.ts';
import { createUserChannelStore } from './infra/notify/userChannels.ts';
import { consumedEventTypes, notifierPorts, wireOrderFlow, wireOrders } from './wiring.ts';
import { tracedOutsideWorld } from './app/tracing.ts';
import { createIntakeGate } from './http/intakeGate.ts';
import { createOrderFeed } from './app/orderFeed.ts';
import { createOrderFeedRows } from './infra/orderFeed.ts';

/** Something a role started; stopped in reverse order of starting. */
interface Part {
  readonly name: string;
  stop(): Promise<void>;
}

export interface RunningService {
  /** `http://host:port` when this process runs the `api` role. */
  readonly url: string | undefined;
  /**
   * Stops the roles gracefully: intake first (new requests get 503, those in flight finish), then
   * the sweeper and the consumers drain (the saga steps in flight finish; unacked messages go back
   * to the broker), then the relay publishes what they wrote, then the HTTP server closes.
   */
  stop(): Promise<void>;
}

/** The price service and venue: HTTP adapters when their URLs are set, else the simulated market. */
function outsideWorld(config: Config, logger: Logger): { prices: PriceService; venue: TradeVenue } {
  const market = createSimulatedMarket({ seed: config.simulationSeed, currencies: config.currencies });
  const prices = config.priceServiceUrl
    ? createHttpPriceService({ baseUrl: config.priceServiceUrl, timeoutMs: config.saga.callTimeoutMs })
    : market.priceService;
  const venue = config.tradeWorkerUrl
    ? createHttpTradeWorker({ baseUrl: config.tradeWorkerUrl, timeoutMs: config.saga.callTimeoutMs })
    : market.venue;
  logger.info(
    { prices: config.priceServiceUrl ?? 'simulated', venue: config.tradeWorkerUrl ?? 'simulated' },
    'outside world',
  );
  return config.tracing ? tracedOutsideWorld({ prices, venue }) : { prices, venue };
}

export interface ServiceOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly db: Database;
  readonly inspector?: SagaInspector | undefined;
  /**
   * Messages waiting in the dead letters, for the `dead_letter` alert; default: the rows of
   * `dead_letters` plus, with RabbitMQ, the messages of every `<queue>.dead`.
   */
  readonly deadLetterCount?: () => Promise<number>;
}

/** The user-notification transports that are configured; the operator's alerts use them too. */
function transportsOf(config: Config, logger: Logger) {
  const { telegramBotToken, telegramApiRoot, smtpUrl, mailFrom } = config.notifications;
  const telegram = telegramBotToken
    ? createTelegramClient({ token: telegramBotToken, apiRoot: telegramApiRoot, logger })
    : undefined;
  const mail = smtpUrl ? createMailer({ smtpUrl, from: mailFrom }) : undefined;
  return { telegram, mail };
}

/** The notifier with the transports that are configured (none: notifications are logged). */
function notifierOf(
  config: Config,
  logger: Logger,
  db: Database,
  transports: ReturnType<typeof transportsOf>,
  observers: Pick<NotifierDeps, 'metrics' | 'channelAlerts'>,
) {
  const { telegramApiRoot, smtpUrl, retryForMs, leaseMs } = config.notifications;
  const { telegram, mail } = transports;
  logger.info(
    { telegram: telegram ? telegramApiRoot : 'off', email: smtpUrl ? 'on' : 'off' },
    'notification channels',
  );
  return createNotifier({ ...notifierPorts(db), logger, telegram, mail, retryForMs, leaseMs, ...observers });
}

/**
 * Starts this process's roles (ROLES, all by default):
 * - `api`: the HTTP API (order intake, history, saga view, channels);
 * - `relay`: outbox → RabbitMQ;
 * - `saga`: the orchestrator, consuming `saga.order-accepted`;
 * - `notifier`: notifications, consuming `notifications`;
 * - `sweeper`: resumes sagas that made no progress for SWEEP_STALE_MS.
 * Without AMQP_URL events travel on the in-process bus, so one process runs every role.
 */
export async function startService(options: ServiceOptions): Promise<RunningService> {
  const { config, logger, db, inspector } = options;
  const has = (role: Role) => config.roles.has(role);
  if (!config.amqpUrl && config.roles.size !== ROLES.length) {
    throw new Error(
      `ROLES=${[...config.roles].join(',')} needs AMQP_URL: without a broker, events travel on the ` +
        'in-process bus, so one process runs every role',
    );
  }
  const { prices, venue } = outsideWorld(config, logger);
  const metrics = createServiceMetrics({ db, stuckAfterMs: config.stuckAfterMs, logger });
  const transports = transportsOf(config, logger);
  const alerts = createAlerts({
    store: createAlertStore(db),
    logger,
    metrics,
    operators: operatorChannels({
      telegram: transports.telegram,
      telegramChatId: config.alerts.telegramChatId,
      mail: transports.mail,
      email: config.alerts.email,
    }),
  });
  // The broker connections of this process, for GET /ready.
  const brokerLinks: BrokerLink[] = [];
  // Events no queue is bound to would cost an outbox row, a publish and a confirm each, for nobody.
  const outboxEventTypes =
    config.outboxEvents === 'all'
      ? undefined
      : consumedEventTypes(Object.values(QUEUES).map((q) => ({ eventTypes: q.routingKeys })));
  const flowOptions = {
    db,
    logger,
    prices,
    venue,
    currencies: config.currencies,
    settings: config.saga,
    idempotencyKeyTtlMs: config.idempotencyKeyTtlMs,
    outboxEventTypes,
    intakeBatching: config.intakeBatching,
    metrics,
    ...(inspector ? { inspect: inspector.inspect } : {}),
  };
  const parts: Part[] = [];
  const start = async (name: string, part: { start(): Promise<void> | void; stop(): Promise<void> }) => {
    await part.start();
    parts.push({ name, stop: () => part.stop() });
    logger.info({ part: name }, 'started');
  };

  let wired: ReturnType<typeof wireOrders>;
  // RabbitMQ: moves `<queue>.dead` messages into dead_letters, so the admin API lists them all.
  const keeperOf = (name: string): DeadLetterKeeper | undefined =>
    config.amqpUrl
      ? createDeadLetterKeeper({
          amqpUrl: config.amqpUrl,
          db,
          topology: topology({ prefix: config.amqpPrefix }),
          logger,
          intervalMs: config.sweep.intervalMs,
          connectionName: `${config.amqpPrefix}market-order-saga ${name}`,
        })
      : undefined;
  const notifications = () => {
    const notifier = notifierOf(config, logger, db, transports, {
      metrics,
      channelAlerts: alerts.channelAlerts,
    });
    // The retry loop sends the notifications that wait for a retry, whatever bus brought them; it
    // stops last, with the mailer its sends need.
    notifier.start();
    parts.push({ name: 'notifier retries', stop: () => notifier.stop() });
    return notifier;
  };
  // The mailer closes last: the notifier's retries and the operator's alerts send through it.
  parts.push({ name: 'mail', stop: () => Promise.resolve(transports.mail?.close()) });
  if (config.amqpUrl) {
    // Appends wake the relays of every process (this one's too) through NOTIFY.
    const notify = outboxNotifier(db, (error) => logger.warn({ err: error }, 'NOTIFY outbox failed'));
    wired = wireOrders({ ...flowOptions, onAppended: notify });
    const amqpUrl = config.amqpUrl;
    const prefix = config.amqpPrefix;
    const topo = topology({ prefix });
    if (has('relay')) {
      const relay = createOutboxRelay({
        db,
        amqpUrl,
        logger,
        topology: topo,
        pollIntervalMs: config.relayPollMs,
        connectionName: `${prefix}market-order-saga relay`,
      });
      brokerLinks.push({
        name: 'relay',
        get connected() {
          return relay.connected;
        },
      });
      await start('relay', relay);
    }
    const consume = (role: 'saga' | 'notifier', consumer: Consumer, queue: string) => {
      const rabbit = createRabbitConsumer({
        amqpUrl,
        logger,
        consumer,
        queue: `${prefix}${queue}`,
        topology: topo,
        prefetch: config.prefetch,
        connectionName: `${prefix}market-order-saga ${role}`,
        metrics,
      });
      brokerLinks.push({
        name: `${role} consumer`,
        get connected() {
          return rabbit.connected;
        },
      });
      return start(role, rabbit);
    };
    if (has('saga')) await consume('saga', wired.orchestrator, QUEUES.sagaOrderAccepted.name);
    if (has('notifier')) await consume('notifier', notifications(), QUEUES.notifications.name);
  } else {
    const flow = wireOrderFlow({ ...flowOptions, consumers: [notifications()] });
    wired = flow;
    await start('in-process bus', flow.delivery);
  }

  if (has('sweeper')) {
    const { intervalMs, staleMs } = config.sweep;
    let deadLetterCount = options.deadLetterCount;
    if (!deadLetterCount) {
      const broker = config.amqpUrl
        ? { amqpUrl: config.amqpUrl, topology: topology({ prefix: config.amqpPrefix }) }
        : undefined;
      const counter = createDeadLetterCounter(db, broker);
      parts.push({ name: 'dead-letter count', stop: () => counter.close() });
      deadLetterCount = () => counter.count();
    }
    const evaluator = createAlertEvaluator({
      alerts,
      store: createAlertStore(db),
      conditions: createAlertConditions(db),
      deadLetterCount,
      stuckAfterMs: config.alerts.stuckAfterMs,
      logger,
    });
    const reconciler = createReconciler({
      audit: wired.audit,
      venue,
      logger,
      callTimeoutMs: config.saga.callTimeoutMs,
    });
    await start(
      'sweeper',
      createSweeper({
        openSagas: createOpenSagas(db),
        runner: wired.runner,
        logger,
        intervalMs,
        staleMs,
        reconciler,
        idempotencyKeys: wired.keys,
        alerts: evaluator,
      }),
    );
    const keeper = keeperOf('dead-letter keeper');
    if (keeper) await start('dead-letter keeper', keeper);
  }

  let url: string | undefined;
  const intake = createIntakeGate();
  if (has('api')) {
    const keys = createKeyRing({ store: createApiKeyStore(db), configured: config.apiKeys, logger });
    await start('api keys', keys);
    // Used on demand (list, replay, drop), not started: the sweeper role's keeper runs the passes.
    const adminKeeper = keeperOf('admin');
    if (adminKeeper) parts.push({ name: 'admin keeper', stop: () => adminKeeper.stop() });
    // The dashboard's live feed: polls only while a browser watches; stopping it ends the streams,
    // which would otherwise hold the HTTP server's close open.
    const feedRows = createOrderFeedRows(db);
    const feed = createOrderFeed({ rows: feedRows, logger });
    parts.push({ name: 'order feed', stop: () => feed.stop() });
    const app = createApp({
      orders: wired.orders,
      positions: createPositionService(wired.store),
      sagas: createSagaViews(wired.store, config.saga.deadlineMs),
      readModels: createReadModelQueries(createReadModels(db)),
      health: createHealthProbe(db),
      currencies: config.currencies,
      logger,
      maxBodyBytes: config.maxBodyBytes,
      channels: createChannelsService(createUserChannelStore(db)),
      auth: keys,
      logContext,
      orderRateLimit: config.orderRateLimit,
      admin: {
        sagas: createSagaAdmin({
          rows: createSagaRows(db),
          store: wired.store,
          runner: wired.runner,
          deadlineMs: config.saga.deadlineMs,
          stuckAfterMs: config.stuckAfterMs,
        }),
        deadLetters: createDeadLetters(
          db,
          adminKeeper ? { absorb: adminKeeper.absorb, republish: adminKeeper.republish, logger } : {},
        ),
      },
      metrics,
      metricsEndpoint: metrics,
      readiness: createReadinessProbe({
        db,
        ...(config.amqpUrl ? { broker: () => brokerLinks } : {}),
      }),
      intake,
      tracing: config.tracing,
      dashboard: { rows: feedRows, feed },
    });
    const server = await serveHttp(app.fetch, { host: config.host, port: config.port });
    url = `http://${config.host}:${server.port}`;
    parts.push({ name: 'api', stop: () => server.close() });
    logger.info({ url, roles: [...config.roles], orderRateLimit: config.orderRateLimit ?? 'off' }, 'serving');
  }

  return {
    url,
    async stop() {
      // Intake first: new requests get 503 and the ones in flight finish (an order they place is
      // stored, so it is carried out by whoever runs its saga).
      intake.close();
      if (intake.inFlight > 0) logger.info({ requests: intake.inFlight }, 'waiting for requests in flight');
      await intake.drained();
      // Then the sweeper and the consumers drain (saga steps in flight finish), then the relay
      // publishes what they wrote; the HTTP server answers 503 until then, and closes last.
      const order = [
        'api keys',
        'admin keeper',
        'sweeper',
        'dead-letter keeper',
        'dead-letter count',
        'saga',
        'notifier',
        'in-process bus',
        'relay',
        'notifier retries',
        'order feed',
        'api',
        'mail',
      ];
      const sorted = [...parts].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
      for (const part of sorted) {
        logger.debug({ part: part.name }, 'stopping');
        await part
          .stop()
          .catch((error: unknown) => logger.error({ err: error, part: part.name }, 'stop failed'));
      }
    },
  };
}
