import { z } from 'zod';
import { currencies, DEFAULT_CURRENCIES, DEFAULT_MAX_AMOUNT, parseCurrencyList } from './domain/money.ts';
import type { Currencies } from './domain/money.ts';

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
  };
}
