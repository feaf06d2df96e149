import { z } from 'zod';
import { currencies, DEFAULT_CURRENCIES, DEFAULT_MAX_AMOUNT, parseCurrencyList } from './domain/money.ts';
import type { Currencies } from './domain/money.ts';
import { DEFAULT_SAGA_SETTINGS } from './app/sagaSteps.ts';
import type { SagaSettings } from './app/sagaSteps.ts';

export interface Config {
  readonly host: string;
  readonly port: number;
  /** PostgreSQL server; when absent the embedded PGlite under `dataDir` is used. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly logLevel: string;
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
}

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

const EnvSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port(8080),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional()
    .or(z.literal('').transform(() => undefined)),
  DATA_DIR: z.string().min(1).default('./data'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
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
});

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
    logLevel: e.LOG_LEVEL,
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
  };
}
