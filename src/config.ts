import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { currencies, DEFAULT_CURRENCIES, DEFAULT_MAX_AMOUNT, parseCurrencyList } from './domain/money.ts';
import type { Currencies } from './domain/money.ts';
import { DEFAULT_SAGA_SETTINGS } from './app/sagaSteps.ts';
import type { SagaSettings } from './app/sagaSteps.ts';
import { DEFAULT_TELEGRAM_API_ROOT } from './infra/notify/telegram.ts';
import { DEFAULT_LEASE_MS, DEFAULT_RETRY_FOR_MS } from './app/notifications/notifier.ts';
import { parseApiKeyList } from './app/apiKeys.ts';
import type { VerifiableKey } from './app/apiKeys.ts';
import { userIdText } from './http/fields.ts';
import { DEFAULT_PGLITE_SETTINGS } from './infra/db/pglite.ts';
import { tracingRequested } from './infra/tracing.ts';
import { parseFailpoints } from './app/failpoints.ts';
import type { FailpointSpec } from './app/failpoints.ts';

/** What a process does; a process runs one or more roles (all of them by default). */
export const ROLES = ['api', 'relay', 'saga', 'notifier', 'sweeper'] as const;
export type Role = (typeof ROLES)[number];

export interface NotificationConfig {
  /** Telegram Bot API token; without it no Telegram message is sent (notifications are logged). */
  readonly telegramBotToken: string | undefined;
  /** Bot API root, for self-hosted Bot API servers and tests. */
  readonly telegramApiRoot: string;
  /** SMTP server for email notifications, e.g. smtp://127.0.0.1:2525; none: no email. */
  readonly smtpUrl: string | undefined;
  readonly mailFrom: string;
  /** How long a notification whose provider fails is retried before it is recorded failed. */
  readonly retryForMs: number;
  /**
   * How long a notifier's claim on a notification keeps others off it: a notifier that dies
   * between a send and its record leaves the notification to be sent again after this long.
   */
  readonly leaseMs: number;
}

export interface Config {
  readonly host: string;
  readonly port: number;
  /** PostgreSQL server; when absent the embedded PGlite under `dataDir` is used. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  /** PGlite's `shared_buffers` (a PostgreSQL size, e.g. 16MB): most of its resident memory. */
  readonly pgliteSharedBuffers: string;
  readonly logLevel: string;
  /** LOG_FORMAT: `pretty` or `json` lines; unset: pretty on a terminal, JSON otherwise. */
  readonly logFormat: 'pretty' | 'json' | undefined;
  readonly currencies: Currencies;
  readonly maxBodyBytes: number;
  readonly databasePoolSize: number;
  readonly saga: SagaSettings;
  /** Real price service and trade worker; when unset, the simulated market is used. */
  readonly priceServiceUrl: string | undefined;
  readonly tradeWorkerUrl: string | undefined;
  /** Seed of the simulated market (same seed, same prices and outcomes). */
  readonly simulationSeed: number;
  /** `stately`: attach every saga actor to the Stately inspector. */
  readonly sagaInspect: 'stately' | undefined;
  readonly inspectPort: number;
  /** Where the inspector bridge listens: loopback unless told otherwise. */
  readonly inspectHost: string;
  /** Port of the `market` command (the simulated market served on its own). */
  readonly marketPort: number;
  /** RabbitMQ; when absent, events travel on the in-process bus. */
  readonly amqpUrl: string | undefined;
  /**
   * Prefix of every exchange and queue name, so several deployments (or test runs) can share one
   * broker without consuming each other's messages (a virtual host per deployment does it too).
   */
  readonly amqpPrefix: string;
  readonly roles: ReadonlySet<Role>;
  /** Messages a RabbitMQ consumer handles at once. */
  readonly prefetch: number;
  /** Fallback poll of the outbox when no NOTIFY arrived. */
  readonly relayPollMs: number;
  /**
   * Which events the outbox carries to the bus: `consumed` (the types a consumer of this service
   * takes: OrderAccepted, OrderCompleted, OrderFailed) or `all` (for other subscribers of the
   * `events` exchange). Every event is stored either way.
   */
  readonly outboxEvents: 'consumed' | 'all';
  /**
   * Service processes on this machine (WORKERS: a number, or `auto` for one per core). Above 1,
   * `serve` supervises that many worker processes, each running ROLES and sharing the HTTP port.
   */
  readonly workers: number;
  /** The sweeper: how often it looks, and after how long without an event a saga has stalled. */
  readonly sweep: { readonly intervalMs: number; readonly staleMs: number };
  /** An open saga with no event for longer than this is stuck: admin lists, /metrics (STUCK_AFTER_MS; default SWEEP_STALE_MS). */
  readonly stuckAfterMs: number;
  /** Alerts (src/app/alerts.ts), evaluated by the sweeper role. */
  readonly alerts: {
    /** A saga stuck this long raises the `saga_stuck` alert (ALERT_STUCK_AFTER_MS). */
    readonly stuckAfterMs: number;
    /** Operator's Telegram chat (with TELEGRAM_BOT_TOKEN) and mailbox (with SMTP_URL). */
    readonly telegramChatId: string | undefined;
    readonly email: string | undefined;
  };
  readonly notifications: NotificationConfig;
  /** Keys from `API_KEYS`, hashed as they were read: the secrets are not kept. */
  readonly apiKeys: readonly VerifiableKey[];
  /** How long an order's Idempotency-Key is kept; after it the key may place a new order. */
  readonly idempotencyKeyTtlMs: number;
  /** Group commit of order intake: statements in flight at once, orders in one statement at most. */
  readonly intakeBatching: { readonly lanes: number; readonly maxBatch: number };
  /** Per-user limit on POST /orders in each API process; undefined: no limit. */
  readonly orderRateLimit: { readonly perSecond: number; readonly burst: number } | undefined;
  /** Longest graceful stop (SIGTERM/SIGINT) before the process exits anyway, non-zero. */
  readonly shutdownTimeoutMs: number;
  /** OpenTelemetry tracing asked for by the OTEL_* variables (src/infra/tracing.ts). */
  readonly tracing: boolean;
  /** FAILPOINTS: where this process crashes or freezes on purpose, for fault tests (none by default). */
  readonly failpoints: readonly FailpointSpec[];
}

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
/** A URL of the given scheme(s), or unset: absent and empty both mean "not configured". */
const optionalUrl = (scheme: RegExp, message: string) =>
  z
    .string()
    .regex(scheme, message)
    .optional()
    .or(z.literal('').transform(() => undefined));

const EnvSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port(8080),
  DATABASE_URL: optionalUrl(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  DATA_DIR: z.string().min(1).default('./data'),
  PGLITE_SHARED_BUFFERS: z
    .string()
    .regex(/^\d+(kB|MB|GB)$/, 'must be a size such as 16MB (kB, MB or GB)')
    .default(DEFAULT_PGLITE_SETTINGS.shared_buffers ?? '16MB'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z
      .enum(['pretty', 'json'], { error: 'must be pretty or json (unset: pretty on a terminal, else json)' })
      .optional(),
  ),
  CURRENCIES: z.string().optional(),
  MAX_ORDER_AMOUNT: z
    .string()
    .regex(/^\d+(\.\d+)?$/, 'must be a positive decimal')
    .default(DEFAULT_MAX_AMOUNT),
  MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(16 * 1024),
  DATABASE_POOL_SIZE: z.coerce.number().int().positive().default(20),
  SAGA_DEADLINE_MS: z.coerce.number().int().positive().default(DEFAULT_SAGA_SETTINGS.deadlineMs),
  MAX_SLIPPAGE: z
    .string()
    .regex(/^0(\.\d+)?$/, 'must be a fraction below 1, e.g. 0.01 for 1 %')
    .default(DEFAULT_SAGA_SETTINGS.maxSlippage),
  MAX_QUOTE_AGE_MS: z.coerce.number().int().positive().default(DEFAULT_SAGA_SETTINGS.maxQuoteAgeMs),
  CALL_TIMEOUT_MS: z.coerce.number().int().positive().default(DEFAULT_SAGA_SETTINGS.callTimeoutMs),
  PRICE_SERVICE_URL: z.url().optional(),
  TRADE_WORKER_URL: z.url().optional(),
  SIMULATION_SEED: z.coerce.number().int().default(1),
  SAGA_INSPECT: z.enum(['stately']).optional(),
  INSPECT_PORT: port(8081),
  INSPECT_HOST: z.string().min(1).default('127.0.0.1'),
  MARKET_PORT: port(8090),
  AMQP_URL: optionalUrl(/^amqps?:\/\//, 'must be an amqp:// URL'),
  ROLES: z
    .string()
    .default(ROLES.join(','))
    .transform((s) =>
      s
        .split(',')
        .map((r) => r.trim())
        .filter((r) => r.length > 0),
    )
    .pipe(
      z
        .array(z.enum(ROLES, { error: `each role must be one of ${ROLES.join(', ')}` }))
        .min(1, `name at least one of ${ROLES.join(', ')}`),
    ),
  AMQP_PREFIX: z
    .string()
    .regex(/^[\w.-]*$/, 'letters, digits, dots, dashes and underscores only')
    .default(''),
  PREFETCH: z.coerce.number().int().positive().max(65535).default(32),
  RELAY_POLL_MS: z.coerce.number().int().positive().default(100),
  WORKERS: z
    .union([z.literal('auto'), z.coerce.number().int().min(1).max(64)], {
      error: 'must be a number from 1 to 64, or auto (one per core)',
    })
    .default(1),
  OUTBOX_EVENTS: z.enum(['consumed', 'all'], { error: 'must be consumed or all' }).default('consumed'),
  SWEEP_INTERVAL_MS: z.coerce.number().int().positive().default(5_000),
  SWEEP_STALE_MS: z.coerce.number().int().positive().default(60_000),
  STUCK_AFTER_MS: z.coerce.number().int().positive().optional(),
  ALERT_STUCK_AFTER_MS: z.coerce.number().int().positive().optional(),
  ALERT_TELEGRAM_CHAT_ID: z
    .string()
    .regex(/^-?\d{1,20}$|^@\w{5,32}$/, 'must be a Telegram chat id (digits, - for groups) or @channelname')
    .optional()
    .or(z.literal('').transform(() => undefined)),
  ALERT_EMAIL: z
    .email('must be an email address')
    .optional()
    .or(z.literal('').transform(() => undefined)),
  TELEGRAM_BOT_TOKEN: z.string().min(1).optional(),
  TELEGRAM_API_ROOT: z.url().default(DEFAULT_TELEGRAM_API_ROOT),
  SMTP_URL: optionalUrl(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL'),
  MAIL_FROM: z.string().min(3).default('market-order-saga <noreply@localhost>'),
  NOTIFY_RETRY_FOR_MS: z.coerce.number().int().positive().default(DEFAULT_RETRY_FOR_MS),
  NOTIFY_LEASE_MS: z.coerce
    .number()
    .int()
    .min(1_000, 'must be at least 1000 (ms): longer than any send takes')
    .default(DEFAULT_LEASE_MS),
  API_KEYS: z.string().default(''),
  IDEMPOTENCY_KEY_TTL_HOURS: z.coerce
    .number()
    .positive()
    .max(24 * 365)
    .default(24),
  INTAKE_LANES: z.coerce.number().int().positive().max(64).default(4),
  INTAKE_MAX_BATCH: z.coerce.number().int().positive().max(1000).default(64),
  ORDER_RATE_LIMIT_PER_SECOND: z.coerce.number().int().min(0).default(0),
  ORDER_RATE_LIMIT_BURST: z.coerce.number().int().min(0).default(0),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().max(3_600_000).default(10_000),
  FAILPOINTS: z
    .string()
    .default('')
    .transform((text, ctx) => {
      try {
        return parseFailpoints(text);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    }),
});

/** Why a user id of API_KEYS is refused, by the API's own rules; undefined when it is fine. */
const userIdProblem = (userId: string) => userIdText().safeParse(userId).error?.issues[0]?.message;

/** API_KEYS parsed; its error names the entry and never quotes the value (it holds secrets). */
function apiKeysOf(text: string): VerifiableKey[] {
  try {
    return parseApiKeyList(text, userIdProblem);
  } catch (error) {
    throw new Error(`Invalid configuration:\n  API_KEYS: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Reads configuration from the environment. Fails at start-up naming every bad variable, rather
 * than later with a confusing error.
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const missing = [
    e.ALERT_TELEGRAM_CHAT_ID && !e.TELEGRAM_BOT_TOKEN
      ? '  ALERT_TELEGRAM_CHAT_ID: needs TELEGRAM_BOT_TOKEN (the bot that messages the operator)'
      : undefined,
    e.ALERT_EMAIL && !e.SMTP_URL
      ? '  ALERT_EMAIL: needs SMTP_URL (the server that mails the operator)'
      : undefined,
  ].filter((line) => line !== undefined);
  if (missing.length > 0) throw new Error(`Invalid configuration:\n${missing.join('\n')}`);
  const list = e.CURRENCIES
    ? parseCurrencyList(e.CURRENCIES, e.MAX_ORDER_AMOUNT)
    : e.MAX_ORDER_AMOUNT === DEFAULT_MAX_AMOUNT
      ? DEFAULT_CURRENCIES
      : DEFAULT_CURRENCIES.map((c) => ({ ...c, maxAmount: e.MAX_ORDER_AMOUNT }));
  return {
    host: e.HOST,
    port: e.PORT,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.DATA_DIR,
    pgliteSharedBuffers: e.PGLITE_SHARED_BUFFERS,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    currencies: currencies(list),
    maxBodyBytes: e.MAX_BODY_BYTES,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    saga: {
      ...DEFAULT_SAGA_SETTINGS,
      deadlineMs: e.SAGA_DEADLINE_MS,
      maxSlippage: e.MAX_SLIPPAGE,
      maxQuoteAgeMs: e.MAX_QUOTE_AGE_MS,
      callTimeoutMs: e.CALL_TIMEOUT_MS,
    },
    priceServiceUrl: e.PRICE_SERVICE_URL,
    tradeWorkerUrl: e.TRADE_WORKER_URL,
    simulationSeed: e.SIMULATION_SEED,
    sagaInspect: e.SAGA_INSPECT,
    inspectPort: e.INSPECT_PORT,
    inspectHost: e.INSPECT_HOST,
    marketPort: e.MARKET_PORT,
    amqpUrl: e.AMQP_URL,
    roles: new Set(e.ROLES),
    amqpPrefix: e.AMQP_PREFIX,
    prefetch: e.PREFETCH,
    relayPollMs: e.RELAY_POLL_MS,
    outboxEvents: e.OUTBOX_EVENTS,
    workers: e.WORKERS === 'auto' ? availableParallelism() : e.WORKERS,
    sweep: { intervalMs: e.SWEEP_INTERVAL_MS, staleMs: e.SWEEP_STALE_MS },
    stuckAfterMs: e.STUCK_AFTER_MS ?? e.SWEEP_STALE_MS,
    alerts: {
      stuckAfterMs: e.ALERT_STUCK_AFTER_MS ?? e.STUCK_AFTER_MS ?? e.SWEEP_STALE_MS,
      telegramChatId: e.ALERT_TELEGRAM_CHAT_ID,
      email: e.ALERT_EMAIL,
    },
    notifications: {
      telegramBotToken: e.TELEGRAM_BOT_TOKEN,
      telegramApiRoot: e.TELEGRAM_API_ROOT,
      smtpUrl: e.SMTP_URL,
      mailFrom: e.MAIL_FROM,
      retryForMs: e.NOTIFY_RETRY_FOR_MS,
      leaseMs: e.NOTIFY_LEASE_MS,
    },
    apiKeys: apiKeysOf(e.API_KEYS),
    idempotencyKeyTtlMs: Math.round(e.IDEMPOTENCY_KEY_TTL_HOURS * 3_600_000),
    intakeBatching: { lanes: e.INTAKE_LANES, maxBatch: e.INTAKE_MAX_BATCH },
    orderRateLimit:
      e.ORDER_RATE_LIMIT_PER_SECOND > 0
        ? { perSecond: e.ORDER_RATE_LIMIT_PER_SECOND, burst: e.ORDER_RATE_LIMIT_BURST }
        : undefined,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    tracing: tracingRequested(env),
    failpoints: e.FAILPOINTS,
  };
}
